"""Returns and advantages in NumPy, one equation per function: Monte-Carlo reward-to-go and the
moving-average baseline (REINFORCE), n-step and GAE(lambda) advantages (A2C: one piece of
trajectory, or many at once as the rows of a padded array), and DQN's n-step return with its
bootstrap discount. Each equation is one function here, which training and its reference paths
both call.

Shape suffixes: ``_T`` is one episode's time axis (T steps, rewards r_1..r_T as the env gave
them after actions a_0..a_{T-1}); ``_C`` the pieces (chunks) of trajectory side by side.

Terminated and truncated episodes differ: a terminated episode has no future, so its return
stops at the last reward; a truncated episode (time limit) would have gone on, so where a
value estimate V(s_T) of its last observation is available it is added, discounted, as the
bootstrap value. Pass ``bootstrap_value=0.0`` for terminated episodes.
"""

from __future__ import annotations

import numpy as np


def discounted_cumsum(x_T: np.ndarray, factor: float) -> np.ndarray:
    """y_t = x_t + factor * y_{t+1} (y past the end = 0) along the last axis, in float64:
    ``discounted_cumsum([1, 1, 1], 0.5) == [1.75, 1.5, 1.0]``; rows of a 2-D array each."""
    x_T = np.asarray(x_T, dtype=np.float64)
    y_T = np.empty_like(x_T)
    # One step per time index, all rows at once, from the end: the same float64 operations
    # in the same order as a first-order linear filter over the reversed sequence.
    running = np.zeros(x_T.shape[:-1])
    for t in range(x_T.shape[-1] - 1, -1, -1):
        running = x_T[..., t] + factor * running
        y_T[..., t] = running
    return y_T


def reward_to_go(
    rewards_T: np.ndarray, *, gamma: float, bootstrap_value: float = 0.0
) -> np.ndarray:
    """Discounted reward-to-go (lecture, "Idea 1 + Idea 2"):

        G_t = sum_{t' >= t} gamma^(t'-t) r_t'  +  gamma^(T-t) V(s_T)

    ``reward_to_go([1, 1, 1], gamma=0.5) == [1.75, 1.5, 1.0]``.
    """
    padded = np.append(np.asarray(rewards_T, dtype=np.float64), bootstrap_value)
    return discounted_cumsum(padded, gamma)[:-1].astype(np.float32)


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


def gae_advantages(
    rewards_T: np.ndarray,
    values_T: np.ndarray,
    *,
    bootstrap_value: float,
    gamma: float,
    lambda_: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation (Schulman et al. 2016) over one piece of trajectory,
    with V(s_T) = ``bootstrap_value`` after its last step (0 where the episode terminated):

        delta_t = r_t + gamma V(s_{t+1}) - V(s_t)
        A_t     = sum_{l >= 0} (gamma lambda)^l delta_{t+l}
        target_t = A_t + V(s_t)       (the value regression target)

    lambda = 1 gives the n-step estimator of the lecture's actor-critic, A_t = G_t - V(s_t) with
    G_t the reward-to-go bootstrapped by V(s_T) (``reward_to_go(..., bootstrap_value=V(s_T))``);
    lambda = 0 gives the one-step TD error. Returns (advantages, value targets), float32; the
    equation itself is ``gae_advantages_batch`` (this piece as its one row).
    """
    rewards = np.asarray(rewards_T, dtype=np.float64)
    values = np.asarray(values_T, dtype=np.float64)
    if rewards.shape != values.shape:
        raise ValueError(f"rewards {rewards.shape} and values {values.shape} differ in shape")
    advantages, targets = gae_advantages_batch(
        rewards[None],
        values[None],
        bootstrap_C=np.array([bootstrap_value], dtype=np.float64),
        lengths_C=np.array([len(rewards)]),
        gamma=gamma,
        lambda_=lambda_,
    )
    return advantages[0], targets[0]


def gae_advantages_batch(
    rewards_CT: np.ndarray,
    values_CT: np.ndarray,
    *,
    bootstrap_C: np.ndarray,
    lengths_C: np.ndarray,
    gamma: float,
    lambda_: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``gae_advantages`` for C pieces of trajectory at once, each a row of a (C, T) array:
    piece c has ``lengths_C[c]`` steps (r_t and V(s_t) in the row's first columns) and
    V(s_T) = ``bootstrap_C[c]`` after its last one. Columns past a piece's end are taken as 0
    (whatever they hold): their TD errors are 0, so the recursion from the row's end reaches
    the piece's last step at 0, as for the piece alone. Returns (advantages, value targets),
    float32 (C, T), 0 past each piece's end."""
    rewards = np.asarray(rewards_CT, dtype=np.float64)
    values = np.asarray(values_CT, dtype=np.float64)
    if rewards.shape != values.shape:
        raise ValueError(f"rewards {rewards.shape} and values {values.shape} differ in shape")
    lengths = np.asarray(lengths_C, dtype=np.int64)
    real = np.arange(rewards.shape[1])[None, :] < lengths[:, None]  # step t of piece c exists
    rewards, values = np.where(real, rewards, 0.0), np.where(real, values, 0.0)
    next_values = np.zeros_like(values)  # V(s_{t+1}): the next column, then V(s_T)
    next_values[:, :-1] = values[:, 1:]
    ends = np.flatnonzero(lengths > 0)
    next_values[ends, lengths[ends] - 1] = np.asarray(bootstrap_C, dtype=np.float64)[ends]
    deltas = rewards + gamma * next_values - values
    advantages = discounted_cumsum(deltas, gamma * lambda_)  # each row, from its end
    return advantages.astype(np.float32), (advantages + values).astype(np.float32)


def n_step_returns(
    rewards_BN: np.ndarray, terminated_BN: np.ndarray, truncated_BN: np.ndarray, *, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DQN's n-step target pieces for B windows of N steps, each window one episode's rewards
    r_{t+1}..r_{t+N} after the stored action a_t (entries past the episode's last step are
    ignored). With m = N, or the step on which the episode ended if that comes first:

        G_t        = sum_{k < m} gamma^k r_{t+k+1}
        discount_t = gamma^m, or 0 when the episode terminated within the window
        target     = G_t + discount_t * max_a Q(s_{t+m}, a)

    A truncated episode keeps gamma^m: its last observation is bootstrapped. Returns
    (G float32, discount float32, m int64)."""
    rewards = np.asarray(rewards_BN, dtype=np.float64)
    terminated, truncated = np.asarray(terminated_BN, bool), np.asarray(truncated_BN, bool)
    batch, window = rewards.shape
    returns = np.zeros(batch)
    discount = np.ones(batch)
    steps = np.zeros(batch, dtype=np.int64)
    running = np.ones(batch, dtype=bool)
    for k in range(window):
        returns += np.where(running, discount * rewards[:, k], 0.0)
        discount = np.where(running, discount * gamma, discount)
        steps += running
        discount = np.where(running & terminated[:, k], 0.0, discount)
        running &= ~(terminated[:, k] | truncated[:, k])
    return returns.astype(np.float32), discount.astype(np.float32), steps
