"""Envs for the hostile-input tests, imported by gymnasium from ids such as
``tests.hostile_envs:Steps-v0``: ``Steps`` (a Box observation, games of ``LENGTH`` steps, reward
1 per step) and ``DictObs`` (the same game seen through a Dict observation, which rlgen's
policies do not take)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LENGTH = 5


class Steps(gym.Env):
    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space: gym.Space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> Any:
        return np.array([self.t / LENGTH, 1.0], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), 1.0, self.t >= LENGTH, False, {}


class DictObs(Steps):
    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Dict({"x": gym.spaces.Box(0.0, 1.0, (2,))})

    def _obs(self) -> Any:
        return {"x": super()._obs()}


gym.register("Steps-v0", entry_point="tests.hostile_envs:Steps")
gym.register("DictObs-v0", entry_point="tests.hostile_envs:DictObs")
