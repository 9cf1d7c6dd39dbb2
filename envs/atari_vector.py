"""The fast rollout backend: ale-py's C++ ``AtariVectorEnv`` with the same preset.

The C++ env does the no-op starts, FIRE on reset, action repeat with the max over the last two
raw frames, grayscale, the 84x84 resize and the frame stack in native threads. Two things it
does differently are done here in a thin vector wrapper, so both backends mean the same:

- End of life: ale-py's own ``episodic_life`` restarts the whole game on a lost life (so the
  agent would never see later lives). Here the C++ env plays whole games, and the wrapper marks a
  lost life as the end of a training episode; RLlib then treats the next step as a reset, the
  game goes on, and FIRE is pressed on that step where the game needs it (as ``EpisodicLife``).
- Rewards: the C++ env returns raw rewards; the wrapper adds the raw return to
  ``info["game_return"]`` when a game ends and clips the rewards for training.

Select it per run with ``--set rollout_backend=vector`` (DQN), which also sets RLlib's
``gym_env_vectorize_mode`` to use this vector entry point.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from envs import check_env_id, register_ale
from envs.atari import FRAME_SIZE, MAX_FRAMES_PER_GAME


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


def make_atari_vector_env(
    env_id: str,
    num_envs: int,
    *,
    training: bool,
    sticky_actions: float = 0.0,
    frame_stack: int = 4,
    noop_max: int = 30,
    frame_skip: int = 4,
) -> gym.vector.VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    register_ale()
    check_env_id(env_id)
    env = AtariVectorEnv(
        rom_name(env_id),
        num_envs,
        repeat_action_probability=sticky_actions,
        max_num_frames_per_episode=MAX_FRAMES_PER_GAME,
        img_height=FRAME_SIZE,
        img_width=FRAME_SIZE,
        grayscale=True,
        stack_num=frame_stack,
        frameskip=frame_skip,
        maxpool=True,
        noop_max=noop_max,
        episodic_life=False,
        reward_clipping=False,
        use_fire_reset=True,
    )
    fire = "FIRE" in gym.make(env_id).unwrapped.get_action_meanings()
    return LifeLossAndGameStatistics(env, training=training, fire=fire)
