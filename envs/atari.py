"""The DeepMind / Machado Atari preset, one wrapper per line, in the order that matters.

    make_atari_env("ALE/Breakout-v5", training=True)

Training envs end an episode on the loss of a life and clip rewards to their sign; evaluation
envs play full games with raw rewards. Either way the innermost wrapper, ``GameStatistics``,
sees the raw rewards of the whole game and reports them in ``info["game_return"]`` /
``info["game_frames"]`` (emulator frames) on the step where the game really ends, so logged
returns are always full-game and unclipped.

Frames: the emulator renders grayscale; the max over the last two raw frames of each repeated
action is taken before the resize to 84x84 (uint8). ``frame_stack=k`` adds an env-side stack of
the last k frames, shape (k, 84, 84), padded at reset with copies of the first frame.

Settings: ``sticky_actions=0.0`` with no-op starts (DeepMind, Mnih et al. 2015) or
``sticky_actions=0.25`` (Machado et al. 2018); ALE's own frameskip is off, the repeat happens in
``MaxAndSkip``.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import cv2
import gymnasium as gym
import numpy as np

from envs.ids import check_env_id, register_ale
from envs.statistics import GameStatistics

if TYPE_CHECKING:
    from ale_py.env import AtariEnv

FRAME_SIZE = 84
FRAME_SKIP = 4  # emulator frames per agent step
NOOP_MAX = 30  # at most this many no-ops start a game
MAX_FRAMES_PER_GAME = 108_000  # 30 minutes of play at 60 Hz, the usual cap


def ale_env(env: gym.Env) -> AtariEnv:
    """The ale-py env under ``env``'s wrappers (gymnasium types ``unwrapped`` as a plain Env)."""
    return cast("AtariEnv", env.unwrapped)


class NoopReset(gym.Wrapper):
    """Start each game with 1..noop_max no-op actions (random, from the env's RNG)."""

    def __init__(self, env: gym.Env, noop_max: int = NOOP_MAX) -> None:
        super().__init__(env)
        assert ale_env(env).get_action_meanings()[0] == "NOOP"
        self.noop_max = noop_max

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.unwrapped.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat the action ``skip`` times, sum the rewards, and return the pixel-wise max of the
    last two raw frames (Atari sprites flicker between frames)."""

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        super().__init__(env)
        self.skip = skip

    def step(self, action: Any):
        total = 0.0
        last_two: collections.deque[np.ndarray] = collections.deque(maxlen=2)
        terminated = truncated = False
        info: dict = {}
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            last_two.append(obs)
            total += float(reward)
            if terminated or truncated:
                break
        return np.max(np.stack(last_two), axis=0), total, terminated, truncated, info


class FireReset(gym.Wrapper):
    """Press FIRE after reset in games that wait for it (Breakout serves the ball on FIRE)."""

    def reset(self, **kwargs: Any):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


class EpisodicLife(gym.Wrapper):
    """Training only: a lost life ends the episode; the game itself goes on until it is over,
    and ``reset`` then only presses NOOP (or FIRE) to continue the same game."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = ale_env(self).ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            fire = "FIRE" in ale_env(self).get_action_meanings()
            obs, _, terminated, truncated, info = self.env.step(1 if fire else 0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = ale_env(self).ale.lives()
        self.game_over = False
        return obs, info


class ClipReward(gym.RewardWrapper):
    """Training only: rewards become their sign, {-1, 0, +1} (Mnih et al. 2015)."""

    def reward(self, reward: SupportsFloat) -> float:
        return float(np.sign(float(reward)))


class ResizeFrame(gym.ObservationWrapper):
    """Grayscale frame -> (84, 84) uint8 with area interpolation."""

    def __init__(self, env: gym.Env, size: int = FRAME_SIZE) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_AREA)


class FrameStack(gym.Wrapper):
    """The last k frames, oldest first, shape (k, 84, 84); reset pads with the first frame."""

    def __init__(self, env: gym.Env, k: int) -> None:
        super().__init__(env)
        self.frames: collections.deque = collections.deque(maxlen=k)
        frame_shape = env.observation_space.shape
        assert frame_shape is not None, env.observation_space
        self.observation_space = gym.spaces.Box(0, 255, (k, *frame_shape), np.uint8)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.frames.maxlen or 0):
            self.frames.append(obs)
        return np.stack(self.frames), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(obs)
        return np.stack(self.frames), reward, terminated, truncated, info


def make_atari_env(
    env_id: str,
    *,
    training: bool,
    sticky_actions: float = 0.0,
    noop_max: int = NOOP_MAX,
    frame_skip: int = FRAME_SKIP,
    frame_stack: int = 0,
    render_mode: str | None = None,
) -> gym.Env:
    """The preset. ``training`` switches on life-loss episodes and reward clipping."""
    register_ale()
    check_env_id(env_id)
    env = gym.make(
        env_id,
        frameskip=1,
        repeat_action_probability=sticky_actions,
        obs_type="grayscale",
        max_num_frames_per_episode=MAX_FRAMES_PER_GAME,
        render_mode=render_mode,
    )
    env = GameStatistics(env)
    env = NoopReset(env, noop_max=noop_max) if noop_max > 0 else env
    env = MaxAndSkip(env, skip=frame_skip)
    env = FireReset(env) if "FIRE" in ale_env(env).get_action_meanings() else env
    env = EpisodicLife(env) if training else env
    env = ClipReward(env) if training else env
    env = ResizeFrame(env, FRAME_SIZE)
    env = FrameStack(env, frame_stack) if frame_stack > 1 else env
    return env
