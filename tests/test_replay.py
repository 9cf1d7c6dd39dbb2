"""Tier 1: the frame replay memory: n-step targets by hand, prioritized sampling, and
sample-time stacking against an env-side frame stack on a real Atari ROM."""

import gymnasium as gym
import numpy as np
import pytest

from algorithms.dqn.replay import FrameReplay
from algorithms.dqn.sum_tree import SumTree
from envs.atari import FrameStack, make_atari_env


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


class _CountingEnv(gym.Env):
    """Frames that name themselves: (env, episode, step). Episodes end after a random length,
    terminated or truncated."""

    def __init__(self, env_index: int, seed: int) -> None:
        self.observation_space = gym.spaces.Box(0, 10_000, (3,), np.int32)
        self.action_space = gym.spaces.Discrete(2)
        self.env_index, self.episode, self.t = env_index, -1, 0
        self.rng = np.random.default_rng(seed)

    def _frame(self):
        return np.array([self.env_index, self.episode, self.t], dtype=np.int32)

    def reset(self, **kwargs):
        self.episode, self.t = self.episode + 1, 0
        self.length = int(self.rng.integers(3, 40))
        self.truncates = bool(self.rng.integers(2))
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        return (
            self._frame(),
            float(self.t),
            done and not self.truncates,
            done and self.truncates,
            {},
        )


def _feed_interleaved(replay, *, num_envs, rounds, chunk, stack, seed=0):
    """``num_envs`` envs, each stacked by the preset's FrameStack, send ``chunk``-step pieces of
    their episodes in turn, as one rollout actor's vector env does. Returns the env's own stack
    of every observation, by frame id, and the frame ids in the order the replay stores them."""
    envs = [FrameStack(_CountingEnv(i, seed + i), stack) for i in range(num_envs)]
    env_stacks, written = {}, []
    current = []
    for env in envs:
        obs, _ = env.reset()
        current.append(obs)
    rng = np.random.default_rng(seed)
    keys = [(i, 0) for i in range(num_envs)]
    for _ in range(rounds):
        for i, env in enumerate(envs):
            obs_list, actions, rewards = [current[i]], [], []
            terminated = truncated = False
            for _ in range(int(rng.integers(1, chunk + 1))):
                action = int(rng.integers(2))
                obs, reward, terminated, truncated, _ = env.step(action)
                obs_list.append(obs)
                actions.append(action)
                rewards.append(reward)
                if terminated or truncated:
                    break
            for o in obs_list:
                env_stacks[tuple(o[-1])] = o
            replay.add_chunk(
                keys[i],
                np.stack(obs_list),
                np.array(actions),
                np.array(rewards, dtype=np.float32),
                terminated=terminated,
                truncated=truncated,
            )
            written += [tuple(o[-1]) for o in obs_list[1:]]
            if terminated or truncated:
                obs, _ = env.reset()
                keys[i] = (i, keys[i][1] + 1)
                obs_list = [obs]
            current[i] = obs_list[-1]
    return env_stacks, written


@pytest.mark.parametrize("n_step,prioritized", [(1, False), (3, True)])
def test_interleaved_chunks_of_many_envs_are_all_sampleable_with_their_env_stacks(
    n_step, prioritized
):
    capacity, stack = 300, 4
    replay = FrameReplay(
        capacity, (3,), stack=stack, n_step=n_step, gamma=0.5, obs_dtype=np.int32,
        prioritized=prioritized, seed=0,
    )  # fmt: skip
    env_stacks, _ = _feed_interleaved(replay, num_envs=5, rounds=60, chunk=7, stack=stack)
    assert replay.num_added > 2 * capacity  # wrapped around more than once

    # What must be sampleable, from the frames alone: the frames still in memory are the last
    # ``capacity`` slots written; a transition (env, ep, t) needs its action (frame t+1 arrived),
    # its stack's frames t-3..t and its window's frames t+1..t+n (fewer where the episode ended).
    in_memory = {tuple(f) for f in replay.frames[: replay.num_slots]}
    last_step = {}
    for env, ep, t in env_stacks:
        last_step[(env, ep)] = max(last_step.get((env, ep), 0), t)
    ended = {
        (int(replay.frames[s][0]), int(replay.frames[s][1]))
        for s in np.flatnonzero(replay.terminated | replay.truncated)
    }
    expected = set()
    for env, ep, t in in_memory:
        if (env, ep, t + 1) not in env_stacks:
            continue  # no action from this observation yet
        end = last_step[(env, ep)]
        horizon = min(t + n_step, end) if (env, ep) in ended else t + n_step
        needed = [(env, ep, u) for u in range(max(0, t - stack + 1), horizon + 1)]
        if all(f in in_memory for f in needed):
            expected.add((env, ep, t))
    ready = np.flatnonzero(replay.ready)
    assert {tuple(int(v) for v in replay.frames[s]) for s in ready} == expected
    assert len(expected) > 0.6 * len(replay)  # chunk boundaries are not lost
    if prioritized:  # mass exactly on the sampleable slots, from the moment they are written
        leaves = replay.tree.get(np.arange(capacity))
        np.testing.assert_array_equal(np.flatnonzero(leaves > 0), ready)

    # Every sampleable transition assembles the env's own stacks, now and n steps on.
    batch = replay.transitions(ready)
    for k, slot in enumerate(ready):
        env, ep, t = (int(v) for v in replay.frames[slot])
        np.testing.assert_array_equal(batch.obs[k], env_stacks[(env, ep, t)])
        steps = min(n_step, last_step[(env, ep)] - t)
        expected_return = sum(0.5**j * (t + 1 + j) for j in range(steps))  # r_{t+1} = t + 1
        assert batch.returns[k] == pytest.approx(expected_return)
        np.testing.assert_array_equal(batch.next_obs[k], env_stacks[(env, ep, t + steps)])


def test_prioritized_minibatch_spans_the_memory_with_hand_computed_weights():
    # 200 slots in 4 episodes of 50; priorities p_i = 1 + (i mod 4), alpha 0.5, beta 0.6.
    replay = FrameReplay(
        256, (1,), stack=1, obs_dtype=np.float32, prioritized=True, alpha=0.5, seed=3
    )
    for e in range(4):
        obs = np.zeros((51, 1), dtype=np.float32)
        replay.add_chunk(e, obs, np.zeros(50), np.zeros(50), terminated=True, truncated=False)
    slots = np.flatnonzero(replay.ready)
    assert len(slots) == 200
    p = 1.0 + slots % 4
    replay.update_priorities(slots, p - replay.eps)
    # P(i) = p_i^0.5 / sum_j p_j^0.5, w_i = (N P(i))^-0.6 / max_j (N P(j))^-0.6 = (P_i/P_min)^-0.6
    probs = np.sqrt(p) / np.sqrt(p).sum()
    np.testing.assert_allclose(replay.probabilities(slots), probs, rtol=1e-9)
    counts = np.zeros(replay.capacity)
    for _ in range(400):
        batch = replay.sample(32, beta=0.6)
        # One draw from each 1/32 of the mass: the minibatch reaches across the whole memory.
        assert np.ptp(batch.indices) > 0.9 * len(slots)
        np.add.at(counts, batch.indices, 1)
        expected_w = (np.sqrt(1.0 + batch.indices % 4) / 1.0) ** -0.6
        np.testing.assert_allclose(batch.weights, expected_w, rtol=1e-5)
    by_priority = [counts[slots][p == q].sum() / counts.sum() for q in (1, 2, 3, 4)]
    np.testing.assert_allclose(by_priority, [probs[p == q].sum() for q in (1, 2, 3, 4)], atol=0.01)
