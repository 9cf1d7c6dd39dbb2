"""The true, unclipped full-game return of every env rlgen builds."""

from __future__ import annotations

from typing import Any

import gymnasium as gym


class GameStatistics(gym.Wrapper):
    """Full-game raw return and length, put into ``info`` on the step the game ends."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._return, self._length = 0.0, 0

    def reset(self, **kwargs: Any):
        self._return, self._length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if terminated or truncated:
            info = dict(info, game_return=self._return, game_frames=self._length)
        return obs, reward, terminated, truncated, info
