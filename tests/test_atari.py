"""The Atari preset on a real ROM: shapes, wrapper order, life loss vs game end, and agreement
of the Python wrappers with ale-py's C++ vector backend."""

import cv2
import gymnasium as gym
import numpy as np
import pytest

from envs import GameStatistics, register_ale
from envs.atari import (
    ClipReward,
    EpisodicLife,
    FireReset,
    FrameStack,
    MaxAndSkip,
    NoopReset,
    ResizeFrame,
    make_atari_env,
)
from envs.atari_vector import make_atari_vector_env, rom_name

GAME = "ALE/Breakout-v5"


def _wrapper_chain(env):
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(type(env))
        env = env.env
    return chain


def test_shapes_and_dtypes():
    for kwargs, shape in (({"frame_stack": 4}, (4, 84, 84)), ({}, (84, 84))):
        env = make_atari_env(GAME, training=True, **kwargs)
        obs, _ = env.reset(seed=0)
        assert obs.shape == shape and obs.dtype == np.uint8
        assert env.observation_space.shape == shape
        obs, reward, *_ = env.step(0)
        assert obs.shape == shape and obs.dtype == np.uint8
        env.close()


def test_wrapper_order_training_and_evaluation():
    # outermost first: stack, resize, clip, life loss, fire, repeat+max, no-op, full-game stats
    train = _wrapper_chain(make_atari_env(GAME, training=True, frame_stack=4))
    assert train[:8] == [
        FrameStack, ResizeFrame, ClipReward, EpisodicLife, FireReset, MaxAndSkip, NoopReset,
        GameStatistics,
    ]  # fmt: skip
    evaluation = _wrapper_chain(make_atari_env(GAME, training=False, frame_stack=4))
    assert ClipReward not in evaluation and EpisodicLife not in evaluation


class _RawFrames(gym.Wrapper):
    def step(self, action):
        out = self.env.step(action)
        self.frames.append(out[0])
        return out

    def reset(self, **kwargs):
        self.frames = []
        return self.env.reset(**kwargs)


def test_max_pool_on_raw_frames_before_resize():
    register_ale()
    raw = _RawFrames(
        gym.make(GAME, frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    )
    env = ResizeFrame(MaxAndSkip(raw, skip=4))
    env.reset(seed=3)
    differs = 0
    for t in range(60):
        obs, *_ = env.step(1 if t % 10 == 0 else 2 + t % 2)
        a, b = raw.frames[-2], raw.frames[-1]
        expected = cv2.resize(np.maximum(a, b), (84, 84), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(obs, expected)
        resized_first = np.maximum(
            cv2.resize(a, (84, 84), interpolation=cv2.INTER_AREA),
            cv2.resize(b, (84, 84), interpolation=cv2.INTER_AREA),
        )
        differs += int((resized_first != expected).any())
    assert differs > 0  # the order is visible: resizing first would give other frames


def test_life_loss_ends_training_episode_not_the_game():
    env = make_atari_env(GAME, training=True, frame_stack=4)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    endings = []
    while len(endings) < 5:
        _, reward, terminated, truncated, info = env.step(int(rng.integers(4)))
        assert reward in (-1.0, 0.0, 1.0)  # clipped for learning
        if terminated or truncated:
            endings.append((env.unwrapped.ale.lives(), info.get("game_return")))
            env.reset()
    # Breakout has 5 lives: four episodes end on a lost life with no game statistics, the
    # fifth ends the game and reports its full, unclipped return.
    assert [lives for lives, _ in endings] == [4, 3, 2, 1, 0]
    assert all(ret is None for _, ret in endings[:4])
    assert endings[4][1] is not None and endings[4][1] >= 0

    evaluation = make_atari_env(GAME, training=False, frame_stack=4)
    evaluation.reset(seed=0)
    while True:
        *_, terminated, truncated, info = evaluation.step(int(rng.integers(4)))
        if terminated or truncated:
            break
    assert evaluation.unwrapped.ale.lives() == 0 and "game_return" in info


def test_vector_backend_agrees_with_python_wrappers():
    assert rom_name("ALE/SpaceInvaders-v5") == "space_invaders"
    rng = np.random.default_rng(0)
    vec = make_atari_vector_env(GAME, 4, training=True)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 4, 84, 84) and obs.dtype == np.uint8
    v_means, v_lives, v_games = [], 0, []
    for _ in range(1500):
        obs, reward, terminated, truncated, info = vec.step(rng.integers(4, size=4))
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        v_means.append(obs.mean())
        v_lives += int(terminated.sum())
        v_games += info["game_return"][info["_game_return"]].tolist()
    env = make_atari_env(GAME, training=True, frame_stack=4)
    obs, _ = env.reset(seed=0)
    p_means, p_lives, p_games = [], 0, []
    for _ in range(6000):
        obs, _, terminated, truncated, info = env.step(int(rng.integers(4)))
        p_means.append(obs.mean())
        if terminated or truncated:
            p_lives += 1
            if "game_return" in info:
                p_games.append(info["game_return"])
            obs, _ = env.reset()
    # Same preprocessing: pixel statistics, life-loss rate and game length under a random policy
    # agree closely (same number of agent steps, 6,000, on each side).
    assert abs(np.mean(v_means) - np.mean(p_means)) < 2.0
    assert abs(v_lives - p_lives) <= 0.2 * p_lives
    assert abs(len(v_games) - len(p_games)) <= 0.25 * len(p_games)
    assert abs(np.mean(v_games) - np.mean(p_games)) < 1.0


class _NewestFrames(gym.vector.VectorWrapper):
    """Records the newest frame of each C++ observation (the last one on the stack axis)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.newest = obs[:, -1].copy()
        return obs, info

    def step(self, actions):
        out = self.env.step(actions)
        self.newest = out[0][:, -1].copy()
        return out


@pytest.mark.parametrize("training", [True, False])
def test_vector_frame_stack_pads_each_episode_with_its_first_frame(training):
    # Every stack is the episode's last k frames, oldest first, padded with the episode's first
    # frame - as FrameStack and the DQN replay's re-stacking - at reset, at the C++ autoreset
    # after a game over and, in training, after a lost life (a new episode for RLlib).
    k, n = 4, 2
    vec = make_atari_vector_env(GAME, n, training=training, frame_stack=k)
    assert vec.single_observation_space.shape == (k, 84, 84)
    assert vec.observation_space.shape == (n, k, 84, 84)
    raw = vec.env.env = _NewestFrames(vec.env.env)
    rng = np.random.default_rng(0)
    obs, info = vec.reset(seed=0)
    episodes = [[[raw.newest[i]]] for i in range(n)]  # per env: episodes of frames
    emitted = [[obs[i]] for i in range(n)]
    references = [[np.stack([raw.newest[i]] * k)] for i in range(n)]
    done = np.zeros(n, dtype=bool)
    lives = np.asarray(info["lives"]).copy()
    life_losses = game_overs = in_game_losses = 0
    for _ in range(500):
        obs, _, terminated, truncated, info = vec.step(rng.integers(4, size=n))
        assert obs.shape == (n, k, 84, 84) and obs.dtype == np.uint8
        game_over = info["_game_return"]
        game_overs += int(game_over.sum())
        life_losses += int((terminated & ~game_over).sum())
        in_game_losses += int(((info["lives"] < lives) & ~terminated & ~done).sum())
        lives = np.asarray(info["lives"]).copy()
        for i in range(n):
            if done[i]:
                episodes[i].append([])
            frames = episodes[i][-1]
            frames.append(raw.newest[i])
            last = frames[-k:]
            references[i].append(np.stack([frames[0]] * (k - len(last)) + last))
            emitted[i].append(obs[i])
        done = terminated | truncated
    for i in range(n):
        np.testing.assert_array_equal(np.stack(emitted[i]), np.stack(references[i]))
    assert game_overs >= 1  # the C++ autoreset was exercised
    if training:
        assert life_losses >= 2 and in_game_losses == 0
    else:  # lives are lost inside the evaluation episodes, which do not restart the stack
        assert life_losses == 0 and in_game_losses >= 2
