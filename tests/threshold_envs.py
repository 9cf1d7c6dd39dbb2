"""Envs for the stop-reward tests, imported by gymnasium from the env ids
``tests.threshold_envs:Corridor20-v0`` and ``tests.threshold_envs:Corridor20Solved-v0``.

Every game lasts exactly ``LENGTH`` steps with reward 1 per step, so every game returns exactly
``LENGTH``. ``Corridor20Solved-v0`` has ``reward_threshold = LENGTH`` (the first finished batch
of games reaches it); ``Corridor20-v0`` has no threshold.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LENGTH = 20
THRESHOLD = float(LENGTH)


class Corridor(gym.Env):
    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        x = self.t / LENGTH
        return np.array([x, 1.0 - x], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), 1.0, self.t >= LENGTH, False, {}


gym.register("Corridor20-v0", entry_point=f"{__name__}:Corridor", max_episode_steps=LENGTH + 5)
gym.register(
    "Corridor20Solved-v0", entry_point=f"{__name__}:Corridor", max_episode_steps=LENGTH + 5,
    reward_threshold=THRESHOLD,
)  # fmt: skip
