"""The arrays behind ``LeanEnvRunner`` (``common/env_runner.py``): a block of preallocated
per-step arrays, the episodes (chunks) cut out of it, and the log-probabilities of categorical
draws computed once per sample call."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action


def categorical_logp(logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """log pi(a|s) from logits (..., A) and the actions drawn (...), in float32: the logits
    minus their logsumexp at the action, as ``TorchCategorical.logp``; one numpy pass per
    sample call instead of torch ops every step."""
    top = logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)) + top
    picked = np.take_along_axis(logits, actions[..., None].astype(np.int64), axis=-1)
    return (picked - lse)[..., 0].astype(np.float32)


class RolloutBlock:
    """Preallocated arrays for K vector steps of N sub-envs, grown by doubling when a call
    needs more steps (episode mode); reused across calls. Row k of ``obs`` is what the policy
    saw at step k, row k+1 what the step returned."""

    def __init__(self, num_envs: int, obs_space: gym.Space, act_space: gym.Space) -> None:
        self.n, self.obs_space, self.act_space = num_envs, obs_space, act_space
        self.capacity = 0
        self.logp_rows = 0  # rows whose categorical log-probs are filled in (this call)
        self.dist_inputs: np.ndarray | None = None  # allocated on the first policy forward
        self.resize(64)

    def resize(self, capacity: int) -> None:
        n, kept = self.n, self.capacity
        obs_shape, act_shape = self.obs_space.shape or (), self.act_space.shape or ()

        def grown(old: np.ndarray | None, shape: tuple, dtype: Any, rows: int) -> np.ndarray:
            array = np.zeros(shape, dtype=dtype)
            if old is not None:
                array[:rows] = old[:rows]
            return array

        self.obs = grown(getattr(self, "obs", None), (capacity + 1, n, *obs_shape),
                         self.obs_space.dtype, kept + 1)  # fmt: skip
        self.actions = grown(getattr(self, "actions", None), (capacity, n, *act_shape),
                             self.act_space.dtype, kept)  # fmt: skip
        self.rewards = grown(getattr(self, "rewards", None), (capacity, n), np.float64, kept)
        self.terminated = grown(getattr(self, "terminated", None), (capacity, n), bool, kept)
        self.truncated = grown(getattr(self, "truncated", None), (capacity, n), bool, kept)
        self.logp = grown(getattr(self, "logp", None), (capacity, n), np.float32, kept)
        if self.dist_inputs is not None:
            shape = (capacity, *self.dist_inputs.shape[1:])
            self.dist_inputs = grown(self.dist_inputs, shape, np.float32, kept)
        self.capacity = capacity

    def set_dist_inputs(self, k: int, values: np.ndarray) -> None:
        if self.dist_inputs is None or self.dist_inputs.shape[1:] != values.shape:
            self.dist_inputs = np.zeros((self.capacity, *values.shape), dtype=np.float32)
        self.dist_inputs[k] = values

    def fill_categorical_logp(self, last: int) -> None:
        """The log-probs of the categorical draws of rows up to ``last``, from their logits
        and actions, for the rows not yet filled in."""
        if self.dist_inputs is not None and last >= self.logp_rows:
            rows = slice(self.logp_rows, last + 1)
            self.logp[rows] = categorical_logp(self.dist_inputs[rows], self.actions[rows])
            self.logp_rows = last + 1


def step_sub_envs(
    envs: list[gym.Env], actions: Any, after_done: list[bool], next_obs: np.ndarray
) -> tuple[list, list[bool], list[bool], dict[int, dict]]:
    """One vector step, env by env, with gymnasium's next-step autoreset: a sub-env whose last
    step ended its episode (``after_done``) is only reset. The observations go into
    ``next_obs``; returns the rewards, terminated and truncated flags, and the final infos of
    the sub-envs whose episode ended."""
    n = len(envs)
    rewards: list[Any] = [0.0] * n
    terminateds, truncateds = [False] * n, [False] * n
    ended: dict[int, dict] = {}
    for i, env in enumerate(envs):
        if after_done[i]:
            next_obs[i], _ = env.reset()
            continue
        next_obs[i], rewards[i], terminated, truncated, info = env.step(actions[i])
        if terminated or truncated:
            terminateds[i], truncateds[i] = terminated, truncated
            ended[i] = info
    return rewards, terminateds, truncateds, ended


def actions_for_env(actions: np.ndarray, space: gym.Space, config: Any, as_ints: bool) -> Any:
    """The actions as the env takes them: Python ints where ``as_ints`` (gymnasium's checks on
    numpy scalars cost more than the CartPole step), unsquashed or clipped Box actions
    (RLlib's ``normalize_actions`` / ``clip_actions``)."""
    if as_ints:
        return actions.tolist()
    if not isinstance(space, gym.spaces.Box):
        return actions
    if config.normalize_actions:
        return unsquash_action(actions, space)
    if config.clip_actions:
        return clip_action(actions, space)
    return actions


def ended_infos(infos: dict, ended: np.ndarray) -> dict[int, dict]:
    """Per sub-env whose episode ended (``ended``: bool per sub-env), its own entries of a
    vector env's info dict (gymnasium's ``_key`` masks say which sub-envs a key is for)."""
    everywhere = np.ones(len(ended), dtype=bool)
    return {
        int(i): {
            key: value[i]
            for key, value in infos.items()
            if not key.startswith("_") and infos.get("_" + key, everywhere)[i]
        }
        for i in np.flatnonzero(ended)
    }


def chunk_episode(
    block: RolloutBlock,
    i: int,
    rows: tuple[int, int],
    *,
    episode_id: str,
    t_started: int,
    final_info: dict | None,
    columns: tuple[str, ...],
) -> SingleAgentEpisode:
    """Sub-env i's env steps ``first..last`` (``rows``) of the block as an episode (chunk):
    observations ``first..last+1``; done when ``final_info`` is given; the model outputs in
    ``columns`` where the policy gave a distribution (DQN gives actions only)."""
    first, last = rows
    extra = {}
    if block.dist_inputs is not None:
        outputs = {Columns.ACTION_DIST_INPUTS: block.dist_inputs, Columns.ACTION_LOGP: block.logp}
        for column in columns:
            extra[column] = outputs[column][first : last + 1, i].copy()
    infos: list[dict] = [{} for _ in range(last - first + 2)]
    if final_info is not None:
        infos[-1] = final_info
    done = final_info is not None
    # numpy data makes numpy-backed ("finalized") buffers, as ``to_numpy()`` would
    data: dict[str, Any] = {
        "observations": block.obs[first : last + 2, i].copy(),
        "actions": block.actions[first : last + 1, i].copy(),
        "rewards": block.rewards[first : last + 1, i].copy(),
    }
    return SingleAgentEpisode(
        id_=episode_id,
        observation_space=block.obs_space,
        action_space=block.act_space,
        infos=infos,
        terminated=done and bool(block.terminated[last, i]),
        truncated=done and bool(block.truncated[last, i]),
        extra_model_outputs=extra,
        t_started=t_started,
        len_lookback_buffer=0,
        **data,
    )
