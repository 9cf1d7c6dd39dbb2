"""The fast rollout backend: ale-py's C++ ``AtariVectorEnv`` with the same preset.

The C++ env does the no-op starts, FIRE on reset, action repeat with the max over the last two
raw frames, grayscale and the 84x84 resize in native threads. Three things it does differently
are done here in thin vector wrappers, so both backends (and the DQN replay, which stores the
newest frame of each observation and re-stacks) mean the same:

- End of life: ale-py's own ``episodic_life`` restarts the whole game on a lost life (so the
  agent would never see later lives). Here the C++ env plays whole games, and the wrapper marks a
  lost life as the end of a training episode; RLlib then treats the next step as a reset, the
  game goes on, and FIRE is pressed on that step where the game needs it (as ``EpisodicLife``).
- Rewards: the C++ env returns raw rewards; the wrapper adds the raw return to
  ``info["game_return"]`` when a game ends and clips the rewards for training.
- Frame stack: ale-py's own stack (``stack_num``, newest frame last) starts each game with
  zero frames and runs on across a lost life. The C++ env here returns only the newest frame
  (``stack_num=1``) and ``EpisodeFrameStack`` stacks: every observation is the episode's last
  k frames, oldest first, shape (k, 84, 84) uint8, padded at the start of each episode with
  copies of its first frame - at reset, at the C++ env's next-step autoreset after a game ends
  and, in training, on the first step after a lost life. Evaluation envs have no life-loss
  episodes, so there only game starts pad. This is ``FrameStack`` of the Python preset.

Select it per run with ``--set rollout_backend=vector`` (DQN), which also sets RLlib's
``gym_env_vectorize_mode`` to use this vector entry point.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from envs.atari import FRAME_SIZE, FRAME_SKIP, MAX_FRAMES_PER_GAME, NOOP_MAX, ale_env
from envs.ids import check_env_id, register_ale


def rom_name(env_id: str) -> str:
    """``ALE/SpaceInvaders-v5`` -> ``space_invaders`` (ale-py's ROM id)."""
    game = env_id.split("/", 1)[1].rsplit("-v", 1)[0]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


class LifeLossAndGameStatistics(gym.vector.VectorWrapper):
    """See the module docstring. Assumes the C++ env's next-step autoreset."""

    def __init__(self, env: gym.vector.VectorEnv, *, training: bool, fire: bool) -> None:
        super().__init__(env)
        self.training, self.fire = training, fire
        n = env.num_envs
        self.game_return = np.zeros(n)
        self.lives = np.zeros(n, dtype=np.int64)
        self.game_over = np.zeros(n, dtype=bool)  # the sub-env resets on the next step
        self.life_lost = np.zeros(n, dtype=bool)  # the sub-env continues after a lost life

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.game_return[:] = 0.0
        self.lives = np.asarray(info["lives"]).copy()
        self.game_over[:] = False
        self.life_lost[:] = False
        return obs, info

    def step(self, actions: Any):
        actions = np.asarray(actions).copy()
        if self.fire:
            actions[self.life_lost] = 1  # FIRE serves the next life
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        self.game_return = np.where(self.game_over, 0.0, self.game_return) + rewards
        lives = np.asarray(info["lives"])
        ended = np.asarray(terminated) | np.asarray(truncated)
        lost = self.training & (lives < self.lives) & ~ended & ~self.game_over
        info = dict(info, game_return=np.where(ended, self.game_return, 0.0), _game_return=ended)
        self.game_over, self.life_lost, self.lives = ended, lost, lives.copy()
        out_rewards = np.sign(rewards) if self.training else rewards
        return obs, out_rewards.astype(np.float32), np.asarray(terminated) | lost, truncated, info


class EpisodeFrameStack(gym.vector.VectorWrapper):
    """The last k frames of each sub-env's episode, oldest first, padded with the episode's
    first frame (see the module docstring). The inner env's newest frame is ``obs[:, -1]``, and
    the step after a done (terminated or truncated, a lost life included) starts an episode, as
    with next-step autoreset. The frames live in one preallocated ring buffer, shared head."""

    def __init__(self, env: gym.vector.VectorEnv, k: int) -> None:
        assert k >= 1, k
        super().__init__(env)
        inner_shape = env.single_observation_space.shape
        assert inner_shape is not None, env.single_observation_space
        frame = inner_shape[-2:]
        self.single_observation_space = gym.spaces.Box(0, 255, (k, *frame), np.uint8)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, env.num_envs
        )
        self.k = k
        self.frames = np.zeros((env.num_envs, k, *frame), dtype=np.uint8)  # the ring buffer
        self.head = 0  # slot of the newest frame
        self.starts = np.ones(env.num_envs, dtype=bool)  # the next step starts an episode

    def _stacked(self) -> np.ndarray:
        # a fresh (n, k, 84, 84) array, oldest first; callers may keep it
        return self.frames[:, (self.head + 1 + np.arange(self.k)) % self.k]

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        mask = (kwargs.get("options") or {}).get("reset_mask")
        mask = slice(None) if mask is None else mask
        self.frames[mask] = np.asarray(obs)[mask, -1:]  # pad with the first frame
        self.starts[mask] = False
        return self._stacked(), info

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        newest = np.asarray(obs)[:, -1]
        self.head = (self.head + 1) % self.k
        self.frames[:, self.head] = newest
        if self.starts.any():
            self.frames[self.starts] = newest[self.starts, None]
        self.starts = np.asarray(terminated) | np.asarray(truncated)
        return self._stacked(), rewards, terminated, truncated, info


def make_atari_vector_env(
    env_id: str,
    num_envs: int,
    *,
    training: bool,
    sticky_actions: float = 0.0,
    frame_stack: int = 4,
    noop_max: int = NOOP_MAX,
    frame_skip: int = FRAME_SKIP,
) -> gym.vector.VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    register_ale()
    check_env_id(env_id)
    env: gym.vector.VectorEnv = AtariVectorEnv(
        rom_name(env_id),
        num_envs,
        repeat_action_probability=sticky_actions,
        max_num_frames_per_episode=MAX_FRAMES_PER_GAME,
        img_height=FRAME_SIZE,
        img_width=FRAME_SIZE,
        grayscale=True,
        stack_num=1,  # EpisodeFrameStack stacks
        frameskip=frame_skip,
        maxpool=True,
        noop_max=noop_max,
        episodic_life=False,
        reward_clipping=False,
        use_fire_reset=True,
    )
    fire = "FIRE" in ale_env(gym.make(env_id)).get_action_meanings()
    env = LifeLossAndGameStatistics(env, training=training, fire=fire)
    return EpisodeFrameStack(env, frame_stack)
