"""``RecordingRunner``: rlgen's rollout actor (``LeanEnvRunner``) writing what it samples as a
recording (``runkit.recording``), for ``rlgen record`` (``algorithms/record.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from algorithms.common.env_runner import LeanEnvRunner
from runkit import recording


class RecordingRunner(LeanEnvRunner):
    """Samples with the recording's policy and writes a row group per split each round."""

    def start_recording(
        self, out: str, actor: int, epsilon: float, weights: Any, metadata: dict
    ) -> None:
        """Open this actor's files; load the policy's ``weights`` (None: random actions)."""
        self._epsilon = float(epsilon) if weights is not None else 1.0
        if weights is not None:
            own = self.module.state_dict()
            missing = sorted(set(own) - set(weights))
            if missing:
                raise ValueError(f"the policy's weights lack {missing[:3]}")
            self.module.load_state_dict({k: torch.as_tensor(weights[k]) for k in own})
        seed = int(metadata["seed"]) * 10_007 + actor
        self._rng = np.random.default_rng(seed)
        self._actor = actor
        self._local: dict[str, int] = {}  # RLlib episode id -> this actor's episode count
        self._pending: dict[str, tuple[np.ndarray, int]] = {}  # id -> (last frame, its step)
        schema = recording.schema(metadata)
        self._writers = {
            split: recording.ShardWriter(
                Path(out) / f"{split}.parquet" / f"actor{actor:03d}.parquet", schema
            )
            for split in ("train", "test")
        }
        self._steps = 0

    def _act(self, obs: np.ndarray, k: int, explore: bool, t: int) -> np.ndarray:
        """The greedy action, replaced by a uniform random one with probability epsilon
        (every action with epsilon 1, when the policy is not asked at all)."""
        block = self._block
        n = self.num_envs
        actions_count = int(self.env.single_action_space.n)
        if self._epsilon >= 1.0:
            block.set_dist_inputs(k, np.zeros((n, actions_count), np.float32))
            block.actions[k] = self._rng.integers(actions_count, size=n)
            return block.actions[k]
        actions = super()._act(obs, k, False, t)
        swap = self._rng.random(n) < self._epsilon
        actions[swap] = self._rng.integers(actions_count, size=int(swap.sum()))
        return actions

    def record_round(self, steps: int) -> int:
        """Sample about ``steps`` env steps and write them; the env steps taken."""
        episodes = self.sample(num_timesteps=steps, explore=False)
        rows = {split: recording.Rows() for split in self._writers}
        taken = 0
        for ep in episodes:
            taken += len(ep)
            self._add(ep, rows)
        for split, writer in self._writers.items():
            writer.write(rows[split])
        self._steps += taken
        return taken

    def _add(self, ep: Any, rows: dict[str, recording.Rows]) -> None:
        local = self._local.setdefault(ep.id_, len(self._local))
        obs = np.asarray(ep.get_observations())
        frames = obs[:, -1] if obs.ndim == 4 else obs  # the newest frame of each stack
        done = bool(ep.is_done)
        rows[recording.split_of(local)].add(
            frames, episode=recording.episode_id(self._actor, local), first_step=ep.t_started,
            actions=np.asarray(ep.get_actions()), rewards=np.asarray(ep.get_rewards()),
            terminated=bool(ep.is_terminated), truncated=bool(ep.is_truncated), closed=done,
        )  # fmt: skip
        if done:
            self._pending.pop(ep.id_, None)
        else:
            self._pending[ep.id_] = (frames[-1], ep.t_started + len(ep))

    def finish_recording(self) -> dict[str, float]:
        """Close the episodes the budget cut (their last observation, action -1) and the
        files; this actor's counts."""
        rows = {split: recording.Rows() for split in self._writers}
        for episode, (frame, step) in self._pending.items():
            local = self._local[episode]
            rows[recording.split_of(local)].add(
                frame[None], episode=recording.episode_id(self._actor, local), first_step=step,
                actions=np.zeros(0, np.int64), rewards=np.zeros(0, np.float32),
                terminated=False, truncated=False, closed=True,
            )  # fmt: skip
        self._pending.clear()
        for split, writer in self._writers.items():
            writer.write(rows[split])
            writer.close()
        test = sum(1 for k in self._local.values() if recording.split_of(k) == "test")
        return {
            "peak_rss_mb": _peak_rss_mb(),
            "steps": self._steps,
            "frames": sum(w.rows for w in self._writers.values()),
            "episodes": len(self._local),
            "train_episodes": len(self._local) - test,
            "test_episodes": test,
        }


def _peak_rss_mb() -> float:
    """This process's peak resident memory (Linux's VmHWM), in MB; NaN where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")
