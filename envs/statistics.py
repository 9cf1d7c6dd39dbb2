"""The true, unclipped full-game return of every env rlgen builds, single or vector."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


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


class VectorGameStatistics(gym.vector.VectorWrapper):
    """``GameStatistics`` for a vector env with next-step autoreset (a sub-env whose step ended
    its game is reset by its next step, which is not a game step): ``info["game_return"]`` and
    ``info["game_frames"]``, with their ``_game_return`` / ``_game_frames`` masks, on the steps
    where games end."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        n = env.num_envs
        self._return, self._length = np.zeros(n), np.zeros(n, dtype=np.int64)
        self._restart = np.zeros(n, dtype=bool)

    def reset(self, **kwargs: Any):
        self._return[:], self._length[:], self._restart[:] = 0.0, 0, False
        return self.env.reset(**kwargs)

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        playing = ~self._restart
        self._return = np.where(playing, self._return + rewards, 0.0)
        self._length = np.where(playing, self._length + 1, 0)
        ended = (terminated | truncated) & playing
        if ended.any():
            games = {"game_return": np.where(ended, self._return, 0.0),
                     "game_frames": np.where(ended, self._length, 0)}  # fmt: skip
            info = dict(info, **games, _game_return=ended, _game_frames=ended)
        self._restart = terminated | truncated
        return obs, rewards, terminated, truncated, info
