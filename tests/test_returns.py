"""Tier 1: Monte-Carlo returns and the moving-average baseline on hand-computed cases."""

import numpy as np
import pytest

from algorithms.common import returns as rt
from algorithms.common.returns import moving_average, reward_to_go, total_return
from algorithms.reinforce.algorithm import split_evenly


def test_reward_to_go_discounted():
    # G_2 = 1; G_1 = 1 + 0.5 * 1 = 1.5; G_0 = 1 + 0.5 * 1.5 = 1.75
    np.testing.assert_allclose(reward_to_go([1, 1, 1], gamma=0.5), [1.75, 1.5, 1.0])


def test_reward_to_go_undiscounted_is_suffix_sum():
    # gamma = 1: G_t = sum of the rewards from t on: [1+2+3, 2+3, 3]
    np.testing.assert_allclose(reward_to_go([1, 2, 3], gamma=1.0), [6, 5, 3])


def test_truncated_episode_bootstraps_terminated_does_not():
    # Terminated: the return ends with the last reward.
    np.testing.assert_allclose(
        reward_to_go([1, 1, 1], gamma=0.5, bootstrap_value=0.0), [1.75, 1.5, 1.0]
    )
    # Truncated with V(s_T) = 4:
    # G_2 = 1 + 0.5*4 = 3; G_1 = 1 + 0.5*3 = 2.5; G_0 = 1 + 0.5*2.5 = 2.25
    np.testing.assert_allclose(
        reward_to_go([1, 1, 1], gamma=0.5, bootstrap_value=4.0), [2.25, 2.5, 3.0]
    )


def test_total_return_gives_every_step_the_episode_return():
    # r(tau) = 1 + 0.5*2 + 0.25*4 = 3 for every step (no reward-to-go)
    np.testing.assert_allclose(total_return([1, 2, 4], gamma=0.5), [3.0, 3.0, 3.0])
    np.testing.assert_allclose(
        total_return([1, 2, 4], gamma=0.5, bootstrap_value=8.0), [4.0, 4.0, 4.0]
    )


def test_reward_to_go_matches_direct_sum_on_random_rewards():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=50)
    gamma = 0.97
    direct = [sum(gamma**k * r for k, r in enumerate(rewards[t:])) for t in range(50)]
    np.testing.assert_allclose(reward_to_go(rewards, gamma=gamma), direct, rtol=1e-5)


def test_moving_average_update():
    assert moving_average(None, 5.0, decay=0.9) == 5.0  # first batch initializes b
    assert moving_average(5.0, 10.0, decay=0.9) == pytest.approx(0.9 * 5 + 0.1 * 10)  # 5.5
    assert moving_average(5.0, 10.0, decay=0.0) == 10.0


@pytest.mark.parametrize(
    "total,parts,expected",
    [(10, 3, [4, 3, 3]), (5, 2, [3, 2]), (1, 3, [1, 0, 0]), (6, 2, [3, 3])],
)
def test_split_evenly_loses_no_episode(total, parts, expected):
    assert split_evenly(total, parts) == expected
    assert sum(split_evenly(total, parts)) == total


def test_n_step_returns_by_hand():
    """Three windows of n=3, gamma=0.5: a full window, one that terminates on its 2nd step (no
    bootstrap), one truncated on its 1st step (bootstrapped after one step)."""
    rewards = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 99.0], [3.0, 99.0, 99.0]])
    terminated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    truncated = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]], dtype=bool)
    g, discount, steps = rt.n_step_returns(rewards, terminated, truncated, gamma=0.5)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 4, 1 + 0.5 * 2, 3.0])
    np.testing.assert_allclose(discount, [0.125, 0.0, 0.5])
    np.testing.assert_array_equal(steps, [3, 2, 1])
