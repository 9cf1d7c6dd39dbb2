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
from ray.rllib.utils.metrics import SAMPLE_TIMER, WEIGHTS_SEQ_NO

from algorithms.common.rollout_arrays import (
    RolloutBlock,
    actions_for_env,
    categorical_logp,
    chunk_episode,
    ended_infos,
    step_sub_envs,
)
from algorithms.rllib_compat import (
    categorical_draw,
    device_of,
    log_finished_episode,
    log_sampled_steps,
    log_time_between_samples,
    mark_sampled,
    run_seed,
    weights_seq_no,
)

logger = logging.getLogger(__name__)

__all__ = ["LeanEnvRunner", "categorical_draw", "categorical_logp"]


class LeanEnvRunner(SingleAgentEnvRunner):
    """See the module docstring."""

    _categorical = False  # this call explores with categorical draws (log-probs per call)
    _columns: tuple[str, ...] = ()  # the model outputs this call writes into its episodes
    env: Any  # RLlib's vector env (Optional in its annotations; always built here)
    module: Any

    def __init__(self, *, config: Any, **kwargs: Any) -> None:
        self._episode_ids: list[str] = []
        super().__init__(config=config, **kwargs)
        self._seeded = False
        self._act_device = device_of(self)
        self._on_cpu = torch.device(self._act_device).type == "cpu"
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
        spaces = self.env.single_observation_space, self.env.single_action_space
        self._block = RolloutBlock(n, *spaces)
        self._after_done = np.zeros(n, dtype=bool)  # the next vector step only resets env i
        self._episode_ids = ["" for _ in range(n)]
        self._t_started = np.zeros(n, dtype=np.int64)  # env steps of env i's earlier chunks
        self._prior_return = np.zeros(n)  # their reward sum
        self._start_time = np.zeros(n)
        self._reset_pending = True

    def _start_episode(self, i: int, now: float) -> None:
        self._episode_ids[i] = uuid.uuid4().hex
        self._t_started[i], self._prior_return[i], self._start_time[i] = 0, 0.0, now

    def _reset_all(self) -> None:
        seed = None if self._seeded else run_seed(self)
        obs, _ = self._vec.reset(seed=seed)
        self._seeded = True
        self._block.obs[0] = obs
        self._after_done[:] = False
        now = time.perf_counter()
        for i in range(self.num_envs):
            self._start_episode(i, now)
        self._reset_pending = False

    def _step_sub_envs(self, k: int, actions: Any) -> dict[int, dict] | None:
        """Vector step k, env by env (``step_sub_envs``). Returns the final infos of the
        sub-envs whose episode ended, or None when a step failed and the env was rebuilt."""
        block = self._block
        assert self._sub_envs is not None
        try:
            steps = step_sub_envs(self._sub_envs, actions, self._after_done.tolist(),
                                  block.obs[k + 1])  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - RLlib's rule for failing envs
            return self._step_failed(exc)
        block.rewards[k], block.terminated[k], block.truncated[k], ended = steps
        return ended

    def _step_vector(self, k: int, actions: Any) -> dict[int, dict] | None:
        """Vector step k through the vector env itself (ale-py's C++ one and the like)."""
        block = self._block
        try:
            obs, rewards, terminated, truncated, infos = self._vec.step(actions)
        except Exception as exc:  # noqa: BLE001 - RLlib's rule for failing envs
            return self._step_failed(exc)
        block.obs[k + 1] = obs
        block.rewards[k] = rewards
        block.terminated[k] = terminated
        block.truncated[k] = truncated
        return ended_infos(infos, (block.terminated[k] | block.truncated[k]) & ~self._after_done)

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
        log_time_between_samples(self)
        self.metrics.log_value(WEIGHTS_SEQ_NO, weights_seq_no(self), window=1)
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
        mark_sampled(self)
        return episodes

    def _act(self, obs: np.ndarray, k: int, explore: bool, t: int) -> np.ndarray:
        """Actions for the observations of vector step k (written into the block)."""
        block = self._block
        tensor = torch.from_numpy(obs)
        batch = {Columns.OBS: tensor if self._on_cpu else tensor.to(self._act_device)}
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
        if force_reset or num_episodes is not None or self._reset_pending:
            self._reset_all()
        block, n = self._block, self.num_envs
        runners = self.config.num_env_runners or 1
        lifetime = self.num_env_steps_sampled_lifetime // runners
        first = np.zeros(n, dtype=np.int64)  # block step where env i's current piece starts
        step = self._step_vector if self._sub_envs is None else self._step_sub_envs
        space = self.env.single_action_space
        # Python ints for gymnasium's envs one by one
        one_by_one = isinstance(space, gym.spaces.Discrete) and self._sub_envs is not None
        self._begin_outputs(explore, random_actions)
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
            ended = step(k, actions_for_env(actions, space, self.config, one_by_one))
            if ended is None:
                return None
            resets = self._after_done
            ts += n - int(resets.sum())
            if ended or resets.any():
                limit = None if num_episodes is None else num_episodes - finished
                finished += self._close_episodes(k, ended, first, episodes, limit)
            done = np.zeros(n, dtype=bool)
            done[list(ended)] = True
            self._after_done = done
            k += 1
        if num_episodes is None:
            self._cut_ongoing(k, first, episodes)
        else:
            self._reset_pending = True
        log_sampled_steps(self, ts, finished)
        return episodes

    def _begin_outputs(self, explore: bool, random_actions: bool) -> None:
        """The model outputs this call writes into its episodes (the block keeps older rows of
        the others), and the per-call categorical log-prob bookkeeping."""
        columns: tuple[str, ...] = () if random_actions else (Columns.ACTION_DIST_INPUTS,)
        self._columns = columns + ((Columns.ACTION_LOGP,) if explore and not random_actions else ())
        self._block.logp_rows = 0
        self._categorical = (
            explore
            and not random_actions
            and (self.module.get_exploration_action_dist_cls() is TorchCategorical)
        )

    def _close_episodes(
        self, k: int, ended: dict[int, dict], first: np.ndarray, episodes: list, limit: int | None
    ) -> int:
        """After vector step k: start the episodes of the sub-envs just reset, append the
        episodes that ended (in sub-env order, at most ``limit``) with their metrics; how many
        were appended."""
        block, now, closed = self._block, time.perf_counter(), 0
        for r in np.flatnonzero(self._after_done):
            self._start_episode(int(r), now)
            first[r] = k + 1
        for i in sorted(ended):
            episodes.append(self._episode(i, int(first[i]), k, ended[i]))
            length = int(self._t_started[i]) + k + 1 - int(first[i])
            ret = float(self._prior_return[i] + block.rewards[first[i] : k + 1, i].sum())
            self._finished.append((length, ret, now - float(self._start_time[i])))
            first[i] = k + 1
            closed += 1
            if limit is not None and closed >= limit:
                break  # RLlib's order: later sub-envs ending in this step are dropped
        return closed

    def _cut_ongoing(self, k: int, first: np.ndarray, episodes: list) -> None:
        """The ongoing chunks, cut after k vector steps; they continue in the next call."""
        block = self._block
        for j in range(self.num_envs):
            if first[j] < k:
                episodes.append(self._episode(j, int(first[j]), k - 1, None))
                self._t_started[j] += k - first[j]
                self._prior_return[j] += block.rewards[first[j] : k, j].sum()
        block.obs[0] = block.obs[k]

    def _episode(
        self, i: int, first: int, last: int, final_info: dict | None
    ) -> SingleAgentEpisode:
        """Env i's env steps ``first..last`` of the block as an episode (chunk)."""
        if self._categorical:
            self._block.fill_categorical_logp(last)
        return chunk_episode(
            self._block,
            i,
            (first, last),
            episode_id=self._episode_ids[i],
            t_started=int(self._t_started[i]),
            final_info=final_info,
            columns=self._columns,
        )

    def get_metrics(self) -> Any:
        for length, ret, seconds in self._finished:
            log_finished_episode(self, length, ret, seconds)
        self._finished.clear()
        return self.metrics.reduce()
