"""Monte-Carlo returns and the moving-average baseline, in NumPy, one equation per function.

Shape suffixes: ``_T`` is one episode's time axis (T steps, rewards r_1..r_T as the env gave
them after actions a_0..a_{T-1}).

Terminated and truncated episodes differ: a terminated episode has no future, so its return
stops at the last reward; a truncated episode (time limit) would have gone on, so where a
value estimate V(s_T) of its last observation is available it is added, discounted, as the
bootstrap value. Pass ``bootstrap_value=0.0`` for terminated episodes.
"""

from __future__ import annotations

import numpy as np
import scipy.signal


def reward_to_go(
    rewards_T: np.ndarray, *, gamma: float, bootstrap_value: float = 0.0
) -> np.ndarray:
    """Discounted reward-to-go (lecture, "Idea 1 + Idea 2"):

        G_t = sum_{t' >= t} gamma^(t'-t) r_t'  +  gamma^(T-t) V(s_T)

    ``reward_to_go([1, 1, 1], gamma=0.5) == [1.75, 1.5, 1.0]``.
    """
    rewards_T = np.asarray(rewards_T, dtype=np.float64)
    padded = np.append(rewards_T, bootstrap_value)
    # lfilter runs y[n] = x[n] + gamma * y[n-1] over the reversed sequence.
    returns = scipy.signal.lfilter([1.0], [1.0, -gamma], padded[::-1])[::-1]
    return returns[:-1].astype(np.float32)


_reward_to_go = reward_to_go  # reachable where a parameter of the same name shadows it


def total_return(
    rewards_T: np.ndarray, *, gamma: float, bootstrap_value: float = 0.0
) -> np.ndarray:
    """Whole-trajectory return r(tau) = G_0 given to every step (the lecture's plain estimator,
    before the reward-to-go variance reduction):

        w_t = sum_{t'>=0} gamma^t' r_t'  +  gamma^T V(s_T)    for every t
    """
    returns = reward_to_go(rewards_T, gamma=gamma, bootstrap_value=bootstrap_value)
    return np.full_like(returns, returns[0] if len(returns) else 0.0)


def episode_returns(
    rewards_T: np.ndarray, *, gamma: float, reward_to_go: bool, bootstrap_value: float = 0.0
) -> np.ndarray:
    """The per-step weight of the chosen estimator: reward-to-go or the whole return r(tau)."""
    fn = _reward_to_go if reward_to_go else total_return
    return fn(rewards_T, gamma=gamma, bootstrap_value=bootstrap_value)


def moving_average(previous: float | None, batch_mean: float, *, decay: float) -> float:
    """Constant baseline: exponential moving average of the returns seen so far
    (lecture: "constant moving average of rewards experienced so far from all trajectories").

        b_k = decay * b_{k-1} + (1 - decay) * mean(returns of batch k),   b_1 = mean(batch 1)
    """
    if previous is None:
        return float(batch_mean)
    return float(decay * previous + (1.0 - decay) * batch_mean)
