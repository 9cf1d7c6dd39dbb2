"""Tier 1: the frame replay memory: n-step targets by hand, prioritized sampling, and
sample-time stacking against an env-side frame stack on a real Atari ROM."""

import numpy as np
import pytest

from algorithms.dqn.replay import FrameReplay
from algorithms.dqn.sum_tree import SumTree
from envs.atari import make_atari_env


def _vector_replay(**kw):
    return FrameReplay(64, (1,), stack=1, obs_dtype=np.float32, seed=0, **kw)


def _by_step(replay, batch):
    return {int(replay.step[i]): k for k, i in enumerate(batch.indices)}


def test_n_step_returns_terminated_and_truncated():
    replay = _vector_replay(n_step=2, gamma=0.5)
    obs = np.arange(5, dtype=np.float32)[:, None]  # s_t = t
    replay.add_chunk(
        "a", obs, np.zeros(4), np.array([1.0, 2.0, 3.0, 4.0]), terminated=True, truncated=False
    )
    batch = replay.sample(400)
    row = _by_step(replay, batch)
    assert set(row) == {0, 1, 2, 3}
    # t=0: 1 + 0.5*2 = 2, bootstrap gamma^2 = 0.25 from s_2
    assert batch.returns[row[0]] == pytest.approx(2.0)
    assert batch.bootstrap_discount[row[0]] == pytest.approx(0.25)
    assert batch.next_obs[row[0]][0] == 2.0
    # t=2: 3 + 0.5*4 = 5, terminated inside the window: no bootstrap
    assert batch.returns[row[2]] == pytest.approx(5.0)
    assert batch.bootstrap_discount[row[2]] == 0.0
    # t=3: the terminal transition itself: 4, no bootstrap
    assert batch.returns[row[3]] == pytest.approx(4.0)
    assert batch.bootstrap_discount[row[3]] == 0.0

    replay = _vector_replay(n_step=3, gamma=0.5)
    obs = np.array([[10.0], [11.0], [12.0]])
    replay.add_chunk("b", obs, np.zeros(2), np.array([1.0, 1.0]), terminated=False, truncated=True)
    batch = replay.sample(200)
    row = _by_step(replay, batch)
    # Truncated after 2 steps: 1 + 0.5*1 = 1.5, bootstrap with 0.5^2 from the last observation
    assert batch.returns[row[0]] == pytest.approx(1.5)
    assert batch.bootstrap_discount[row[0]] == pytest.approx(0.25)
    assert batch.next_obs[row[0]][0] == 12.0


def test_chunks_continue_an_episode_and_wait_for_the_window():
    replay = _vector_replay(n_step=2, gamma=1.0)
    replay.add_chunk(
        "ep",
        np.array([[0.0], [1.0], [2.0]]),
        np.array([0, 1]),
        np.array([1.0, 1.0]),
        terminated=False,
        truncated=False,
    )
    # Only t=0 has its 2-step window written; t=1 waits for the next chunk.
    assert set(_by_step(replay, replay.sample(50))) == {0}
    replay.add_chunk(
        "ep",
        np.array([[2.0], [3.0]]),
        np.array([1]),
        np.array([5.0]),
        terminated=True,
        truncated=False,
    )
    batch = replay.sample(300)
    row = _by_step(replay, batch)
    assert set(row) == {0, 1, 2}
    assert replay.num_slots == 4  # s_2 was not stored twice
    assert batch.returns[row[1]] == pytest.approx(1.0 + 5.0)


def test_sum_tree_find_and_update():
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    # cumulative intervals: [0,1) -> 0, [1,3) -> 2, [3,6) -> 3, [6,10) -> 4
    np.testing.assert_array_equal(tree.find(np.array([0.5, 1.0, 2.9, 3.0, 9.99])), [0, 2, 2, 3, 4])
    tree.set(np.array([4, 4]), np.array([7.0, 1.0]))  # last write wins
    assert tree.total == 7.0


def test_prioritized_probabilities_and_importance_weights():
    replay = FrameReplay(
        16, (1,), stack=1, obs_dtype=np.float32, prioritized=True, alpha=1.0, seed=1
    )
    replay.add_chunk(
        "a", np.zeros((5, 1)), np.zeros(4), np.zeros(4), terminated=True, truncated=False
    )
    slots = np.arange(4)
    replay.update_priorities(slots, np.array([1.0, 2.0, 3.0, 4.0]) - replay.eps)
    counts = np.zeros(4)
    for _ in range(200):
        batch = replay.sample(10, beta=1.0)
        np.add.at(counts, batch.indices, 1)
    # P(i) = p_i / sum p = [0.1, 0.2, 0.3, 0.4]
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.03)
    # w_i = (N P(i))^-1 / max_j w_j = [2.5, 1.25, 0.833, 0.625] / 2.5
    weight_of = dict(zip(batch.indices.tolist(), batch.weights.tolist(), strict=True))
    expected = {0: 1.0, 1: 0.5, 2: 1 / 3, 3: 0.25}
    for i, w in weight_of.items():
        assert w == pytest.approx(expected[i], rel=1e-5)


def _record_atari(steps, seed=0):
    env = make_atari_env("ALE/Breakout-v5", training=True, frame_stack=4)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    episodes, cur = [], {"obs": [obs], "actions": [], "rewards": []}
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        cur["actions"].append(action)
        cur["rewards"].append(reward)
        cur["obs"].append(obs)
        if terminated or truncated:
            episodes.append(dict(cur, terminated=terminated, truncated=truncated))
            obs, _ = env.reset()
            cur = {"obs": [obs], "actions": [], "rewards": []}
    env.close()
    return episodes


def test_sample_time_stacking_equals_env_side_stacking_on_breakout():
    episodes = _record_atari(700)
    assert len(episodes) >= 3  # life losses end training episodes: several boundaries
    replay = FrameReplay(5000, (84, 84), stack=4, n_step=1, gamma=0.99, seed=0)
    rng = np.random.default_rng(0)
    for i, ep in enumerate(episodes):
        obs = np.stack(ep["obs"])
        cuts = sorted(
            set(rng.integers(1, len(ep["actions"]), size=3).tolist()) | {0, len(ep["actions"])}
        )
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):  # the episode arrives in chunks
            replay.add_chunk(
                i,
                obs[a : b + 1],
                np.array(ep["actions"][a:b]),
                np.array(ep["rewards"][a:b]),
                terminated=ep["terminated"] and b == len(ep["actions"]),
                truncated=ep["truncated"] and b == len(ep["actions"]),
            )
    batch = replay.sample(2000)
    for k, slot in enumerate(batch.indices):
        ep, t = episodes[replay.episode[slot]], replay.step[slot]
        np.testing.assert_array_equal(batch.obs[k], ep["obs"][t])
        assert batch.actions[k] == ep["actions"][t]
        if batch.bootstrap_discount[k] > 0:
            np.testing.assert_array_equal(batch.next_obs[k], ep["obs"][t + 1])
    # Episode starts are padded with their own first frame, never the previous episode's.
    starts = batch.indices[replay.step[batch.indices] == 0]
    assert len(starts) > 0
    for slot in starts:
        k = int(np.flatnonzero(batch.indices == slot)[0])
        assert all((batch.obs[k][j] == batch.obs[k][3]).all() for j in range(3))


def test_memory_per_atari_transition_within_target():
    replay = FrameReplay(2000, (84, 84), stack=4, prioritized=True)
    episodes = _record_atari(2500, seed=1)
    for i, ep in enumerate(episodes):
        replay.add_chunk(
            i,
            np.stack(ep["obs"]),
            np.array(ep["actions"]),
            np.array(ep["rewards"]),
            terminated=ep["terminated"],
            truncated=ep["truncated"],
        )
    assert replay.num_slots == replay.capacity  # wrapped around at least once
    per_transition = replay.nbytes / len(replay)
    assert per_transition <= 7.5 * 1024, per_transition
    replay.sample(64)  # still samples after overwriting (history checks)
