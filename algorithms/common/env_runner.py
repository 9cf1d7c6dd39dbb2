"""``LeanEnvRunner``: rlgen's rollout engine, an RLlib EnvRunner (``config.env_runner_cls``).

RLlib's ``SingleAgentEnvRunner`` runs two connector pipelines, a callback round and one
``add_env_step`` per sub-env on every vector step; around a 0.4 ms Atari step that bookkeeping
costs several times the step itself. This runner keeps what RLlib's EnvRunnerGroup needs from it
(the env it builds with ``make_env``, the inference-only module, ``get_state``/``set_state`` for
weight syncs and restarts, checkpoints, the metrics) and replaces the sampling loop:

- one batched policy forward per vector step under ``torch.inference_mode``; actions, their
  log-probabilities and the distribution inputs go into preallocated arrays (T+1, N, ...), the
  observations too, so a step is: forward, sample, one ``env.step``, a few array writes;
- episodes (``SingleAgentEpisode``, numpy-backed) are built once per ``sample`` call from the
  arrays, in the form RLlib's runner returns them: whole episodes, or chunks that continue under
  the same id and ``t_started``, each chunk's first observation the last of the one before;
- the same semantics as RLlib's runner: next-step autoreset (the step after a done only resets
  that sub-env and is not an env step), ``num_timesteps`` ends after the vector step that reaches
  it, ``num_episodes`` starts every sub-env fresh and drops the partial ones, Box actions are
  unsquashed (``normalize_actions``) or clipped for the env while the episode keeps the sampled
  one, exploration's ``t`` is RLlib's global env-step estimate, and the RNG is consumed in the
  same order (one ``sample()`` of the module's action distribution per vector step), so with the
  same seed and weights both runners produce the same trajectories;
- the same metrics: env/agent/module step and episode counts (per call and lifetime), and per
  finished episode its length, return (of the rewards the learner sees) and duration, logged at
  ``get_metrics`` with RLlib's own windows.

One difference on purpose: RLlib's runner re-seeds its envs with the run's seed at the start of
every ``num_episodes`` call, so with a seed every REINFORCE batch starts from the same initial
states. This runner seeds the envs once, at the first reset; later resets continue each env's
own random stream. Custom env-to-module / module-to-env connectors are not run here; a config
that sets them must use ``env_runner=rllib``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from ray.rllib.env.env_runner import NUM_ENV_STEP_FAILURES_LIFETIME
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import (
    SAMPLE_TIMER,
    TIME_BETWEEN_SAMPLING,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

logger = logging.getLogger(__name__)

__all__ = ["LeanEnvRunner"]


def categorical_draw(logits: torch.Tensor) -> torch.Tensor:
    """Actions from (B, A) logits, drawn as RLlib's ``TorchCategorical`` draws them: its
    ``torch.multinomial(probs, 1)`` takes, per row, argmax_a p_a / E_a with E_a ~ Exp(1) drawn
    from the generator (row by row), which is what this computes, with the same numbers: the
    same actions, and the generator left where multinomial leaves it (the tests compare both);
    without a distribution object and multinomial's scans of its argument, which cost more
    than the CartPole step itself.

    TorchCategorical takes the softmax of the logits minus their logsumexp; this takes it of
    the logits themselves. The probabilities agree to float rounding, so a draw could differ
    only where p_a / E_a of two actions tie within rounding (about 1e-7 per draw)."""
    probs = torch.softmax(logits, dim=-1)
    return (probs / torch.empty_like(probs).exponential_(1.0)).argmax(dim=-1)


def categorical_logp(logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """log pi(a|s) from logits (..., A) and the actions drawn (...), in float32: the logits
    minus their logsumexp at the action, as ``TorchCategorical.logp``; one numpy pass per
    sample call instead of torch ops every step."""
    top = logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)) + top
    picked = np.take_along_axis(logits, actions[..., None].astype(np.int64), axis=-1)
    return (picked - lse)[..., 0].astype(np.float32)


class _Block:
    """Preallocated arrays for K vector steps of N sub-envs, grown by doubling when a call
    needs more steps (episode mode); reused across calls. Row k of ``obs`` is what the policy
    saw at step k, row k+1 what the step returned."""

    def __init__(self, num_envs: int, obs_space: gym.Space, act_space: gym.Space) -> None:
        self.n, self.obs_space, self.act_space = num_envs, obs_space, act_space
        self.capacity = 0
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


class LeanEnvRunner(SingleAgentEnvRunner):
    """See the module docstring."""

    _time_after_sampling: float | None  # type: ignore[assignment]  # None in RLlib's
    _categorical = False  # this call explores with categorical draws (log-probs per call)
    _logp_rows = 0
    env: Any  # RLlib's vector env (Optional in its annotations; always built here)
    module: Any

    def __init__(self, *, config: Any, **kwargs: Any) -> None:
        self._episode_ids: list[str] = []
        super().__init__(config=config, **kwargs)
        self._seeded = False
        self._on_cpu = torch.device(self._device).type == "cpu"
        self._finished: list[tuple[int, float, float]] = []  # (length, return, seconds)

    # -- env -------------------------------------------------------------------------------

    def make_env(self) -> None:
        super().make_env()
        assert self.env is not None
        # The vector env under RLlib's info-dict-to-list wrapper. gymnasium's SyncVectorEnv
        # (Python envs) is stepped env by env here, with its next-step autoreset, straight into
        # the block: no batched copies, no info dicts built for steps that end nothing.
        self._vec = self.env.env
        self._sub_envs: list[gym.Env] | None = None
        if isinstance(self._vec, gym.vector.SyncVectorEnv):
            if self._vec.autoreset_mode != gym.vector.AutoresetMode.NEXT_STEP:
                raise ValueError("rlgen's rollout engine needs next-step autoreset")
            self._sub_envs = list(self._vec.envs)
        n = self.num_envs
        self._block = _Block(n, self.env.single_observation_space, self.env.single_action_space)
        self._after_done = np.zeros(n, dtype=bool)  # the next vector step only resets env i
        self._episode_ids = ["" for _ in range(n)]
        self._t_started = np.zeros(n, dtype=np.int64)  # env steps of env i's earlier chunks
        self._prior_return = np.zeros(n)  # their reward sum
        self._start_time = np.zeros(n)
        self._needs_initial_reset = True

    def _start_episode(self, i: int, now: float) -> None:
        self._episode_ids[i] = uuid.uuid4().hex
        self._t_started[i], self._prior_return[i], self._start_time[i] = 0, 0.0, now

    def _reset_all(self) -> None:
        seed = None if self._seeded else self._seed
        obs, _ = self._vec.reset(seed=seed)
        self._seeded = True
        self._block.obs[0] = obs
        self._after_done[:] = False
        now = time.perf_counter()
        for i in range(self.num_envs):
            self._start_episode(i, now)
        self._needs_initial_reset = False

    def _step_sub_envs(self, k: int, actions: Any) -> dict[int, dict] | None:
        """Vector step k, env by env (gymnasium's next-step autoreset: a sub-env whose last
        step ended its episode is only reset). Returns the final infos of the sub-envs whose
        episode ended, or None when a step failed and the env was rebuilt."""
        block, after, next_obs = self._block, self._after_done.tolist(), self._block.obs[k + 1]
        ended: dict[int, dict] = {}
        rewards: list[Any]
        rewards, terminateds, truncateds = (
            [0.0] * self.num_envs,
            [False] * self.num_envs,
            [False] * self.num_envs,
        )
        assert self._sub_envs is not None
        try:
            for i, env in enumerate(self._sub_envs):
                if after[i]:
                    next_obs[i], _ = env.reset()
                    continue
                next_obs[i], rewards[i], terminated, truncated, info = env.step(actions[i])
                if terminated or truncated:
                    terminateds[i], truncateds[i] = terminated, truncated
                    ended[i] = info
        except Exception as exc:  # noqa: BLE001 - RLlib's rule for failing envs
            return self._step_failed(exc)
        block.rewards[k], block.terminated[k], block.truncated[k] = rewards, terminateds, truncateds
        return ended

    def _step_vector(self, k: int, actions: Any) -> dict[int, dict] | None:
        """Vector step k through the vector env itself (ale-py's C++ one and the like)."""
        block, n = self._block, self.num_envs
        try:
            obs, rewards, terminated, truncated, infos = self._vec.step(actions)
        except Exception as exc:  # noqa: BLE001 - RLlib's rule for failing envs
            return self._step_failed(exc)
        block.obs[k + 1] = obs
        block.rewards[k] = rewards
        block.terminated[k] = terminated
        block.truncated[k] = truncated
        ended = (block.terminated[k] | block.truncated[k]) & ~self._after_done
        everywhere = np.ones(n, dtype=bool)
        return {
            int(i): {
                key: value[i]
                for key, value in infos.items()
                if not key.startswith("_") and infos.get("_" + key, everywhere)[i]
            }
            for i in np.flatnonzero(ended)
        }

    def _step_failed(self, exc: Exception) -> dict[int, dict] | None:
        self.metrics.log_value(NUM_ENV_STEP_FAILURES_LIFETIME, 1, reduce="lifetime_sum")
        if not self.config.restart_failed_sub_environments:
            raise RuntimeError(f"env step failed: {exc}") from exc
        logger.exception("rlgen rollout: env step failed; rebuilding the env(s)")
        self.make_env()
        return None  # the sample call starts over

    # -- sampling --------------------------------------------------------------------------

    def sample(  # type: ignore[override]  # RLlib's own runner narrows it the same way
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool | None = None,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[SingleAgentEpisode]:
        if self.env is None:
            raise ValueError(f"{self} has no env: cannot sample")
        if num_timesteps is not None and num_episodes is not None:
            raise ValueError("give num_timesteps or num_episodes, not both")
        if self._time_after_sampling is not None:
            self.metrics.log_value(
                TIME_BETWEEN_SAMPLING, time.perf_counter() - self._time_after_sampling
            )
        self.metrics.log_value(WEIGHTS_SEQ_NO, self._weights_seq_no, window=1)
        explore = self.config.explore if explore is None else explore
        if num_timesteps is None and num_episodes is None:
            if self.config.batch_mode == "truncate_episodes":
                num_timesteps = self.config.get_rollout_fragment_length(self.worker_index)
                num_timesteps *= self.num_envs
            else:
                num_episodes = self.num_envs
        with self.metrics.log_time(SAMPLE_TIMER):
            while True:
                episodes = self._run(num_timesteps, num_episodes, explore, random_actions,
                                     force_reset)  # fmt: skip
                if episodes is not None:
                    break
        self._time_after_sampling = time.perf_counter()
        return episodes

    def _act(self, obs: np.ndarray, k: int, explore: bool, t: int) -> np.ndarray:
        """Actions for the observations of vector step k (written into the block)."""
        block = self._block
        tensor = torch.from_numpy(obs)
        batch = {Columns.OBS: tensor if self._on_cpu else tensor.to(self._device)}
        with torch.inference_mode():
            if explore:
                out = self.module.forward_exploration(batch, t=t)
            else:
                out = self.module.forward_inference(batch)
            if Columns.ACTIONS in out:
                actions = out[Columns.ACTIONS]
            else:
                inputs = out[Columns.ACTION_DIST_INPUTS]
                dist_cls = (
                    self.module.get_exploration_action_dist_cls()
                    if explore
                    else self.module.get_inference_action_dist_cls()
                )
                if explore and dist_cls is TorchCategorical:
                    actions = categorical_draw(inputs)  # log-probs: per call, in ``_run``
                else:
                    dist = dist_cls.from_logits(inputs)
                    if not explore:
                        dist = dist.to_deterministic()
                    actions = dist.sample()
                    if explore:
                        block.logp[k] = dist.logp(actions).cpu().numpy()
                block.set_dist_inputs(k, inputs.cpu().numpy())
        block.actions[k] = actions.cpu().numpy()
        return block.actions[k]

    def _for_env(self, actions: np.ndarray, discrete: bool) -> Any:
        """The actions as the env takes them: Python ints for Discrete spaces (gymnasium's
        checks on numpy scalars cost more than the CartPole step), unsquashed or clipped Box
        actions (RLlib's ``normalize_actions`` / ``clip_actions``)."""
        if discrete and self._sub_envs is not None:
            return actions.tolist()
        space = self.env.single_action_space
        if not isinstance(space, gym.spaces.Box):
            return actions
        if self.config.normalize_actions:
            return unsquash_action(actions, space)
        if self.config.clip_actions:
            return clip_action(actions, space)
        return actions

    def _run(
        self,
        num_timesteps: int | None,
        num_episodes: int | None,
        explore: bool,
        random_actions: bool,
        force_reset: bool,
    ) -> list[SingleAgentEpisode] | None:
        """One sample call's vector steps and its episodes; None when an env step failed and
        the env was rebuilt (the call starts over)."""
        if force_reset or num_episodes is not None or self._needs_initial_reset:
            self._reset_all()
        block, n = self._block, self.num_envs
        runners = self.config.num_env_runners or 1
        lifetime = self.num_env_steps_sampled_lifetime // runners
        first = np.zeros(n, dtype=np.int64)  # block step where env i's current piece starts
        step = self._step_vector if self._sub_envs is None else self._step_sub_envs
        discrete = isinstance(self.env.single_action_space, gym.spaces.Discrete)
        # The model outputs this call writes (the block keeps older rows of the others).
        columns: tuple[str, ...] = () if random_actions else (Columns.ACTION_DIST_INPUTS,)
        columns += (Columns.ACTION_LOGP,) if explore and not random_actions else ()
        self._logp_rows = 0  # block rows whose categorical log-probs are filled in
        self._categorical = (
            explore
            and not random_actions
            and (self.module.get_exploration_action_dist_cls() is TorchCategorical)
        )
        episodes: list[SingleAgentEpisode] = []
        ts = k = finished = 0
        target = num_timesteps if num_timesteps is not None else num_episodes
        assert target is not None
        while (ts if num_timesteps is not None else finished) < target:
            if k == block.capacity:
                block.resize(2 * block.capacity)
            if random_actions:
                block.actions[k] = [self.env.single_action_space.sample() for _ in range(n)]
                actions = block.actions[k]
            else:
                actions = self._act(block.obs[k], k, explore, (lifetime + ts) * runners)
            ended = step(k, self._for_env(actions, discrete))
            if ended is None:
                return None
            resets = self._after_done
            ts += n - int(resets.sum())
            if ended or resets.any():
                now = time.perf_counter()
                for r in np.flatnonzero(resets):
                    self._start_episode(int(r), now)
                    first[r] = k + 1
                for i in sorted(ended):
                    episodes.append(self._episode(i, int(first[i]), k, ended[i], columns))
                    length = int(self._t_started[i]) + k + 1 - int(first[i])
                    ret = float(self._prior_return[i] + block.rewards[first[i] : k + 1, i].sum())
                    self._finished.append((length, ret, now - float(self._start_time[i])))
                    first[i] = k + 1
                    finished += 1
                    if num_episodes is not None and finished >= num_episodes:
                        break  # RLlib's order: later sub-envs ending in this step are dropped
            done = np.zeros(n, dtype=bool)
            done[list(ended)] = True
            self._after_done = done
            k += 1
        if num_episodes is None:
            for j in range(n):  # the ongoing chunks, cut here; they continue next call
                if first[j] < k:
                    episodes.append(self._episode(j, int(first[j]), k - 1, None, columns))
                    self._t_started[j] += k - first[j]
                    self._prior_return[j] += block.rewards[first[j] : k, j].sum()
            block.obs[0] = block.obs[k]
        else:
            self._needs_initial_reset = True
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=ts)
        self._increase_sampled_metrics(ts, finished)
        return episodes

    def _episode(
        self, i: int, first: int, last: int, final_info: dict | None, columns: tuple[str, ...]
    ) -> SingleAgentEpisode:
        """Env i's env steps ``first..last`` of the block as an episode (chunk): observations
        ``first..last+1``; done when ``final_info`` is given; the model outputs in ``columns``
        where the policy gave a distribution (DQN gives actions only)."""
        block = self._block
        extra = {}
        filled = self._logp_rows
        if self._categorical and block.dist_inputs is not None and last >= filled:
            rows = slice(filled, last + 1)  # up to the newest row an episode needs
            block.logp[rows] = categorical_logp(block.dist_inputs[rows], block.actions[rows])
            self._logp_rows = last + 1
        if block.dist_inputs is not None:
            outputs = {
                Columns.ACTION_DIST_INPUTS: block.dist_inputs,
                Columns.ACTION_LOGP: block.logp,
            }
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
            id_=self._episode_ids[i],
            observation_space=self.env.single_observation_space,
            action_space=self.env.single_action_space,
            infos=infos,
            terminated=done and bool(block.terminated[last, i]),
            truncated=done and bool(block.truncated[last, i]),
            extra_model_outputs=extra,
            t_started=int(self._t_started[i]),
            len_lookback_buffer=0,
            **data,
        )

    def get_metrics(self) -> Any:
        for length, ret, seconds in self._finished:
            self._log_episode_metrics(length, ret, seconds)
        self._finished.clear()
        return self.metrics.reduce()
