"""DQN targets and loss as pure torch functions, one equation each.

Shape suffixes: ``_B`` batch, ``_BA`` batch x actions. ``returns_B`` is the (n-step) discounted
reward sum and ``discount_B`` the factor gamma^k on the bootstrap, already 0 where the episode
terminated inside the window (truncated episodes keep it: they bootstrap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def td_target(
    *, returns_B: torch.Tensor, discount_B: torch.Tensor, next_q_target_BA: torch.Tensor
) -> torch.Tensor:
    """Nature DQN target (Mnih et al. 2015): y = R + gamma^k max_a' Q_target(s', a')."""
    return (returns_B + discount_B * next_q_target_BA.max(dim=1).values).detach()


def double_q_target(
    *,
    returns_B: torch.Tensor,
    discount_B: torch.Tensor,
    next_q_online_BA: torch.Tensor,
    next_q_target_BA: torch.Tensor,
) -> torch.Tensor:
    """Double DQN target (van Hasselt et al. 2016): the online net picks a', the target net
    values it: y = R + gamma^k Q_target(s', argmax_a' Q_online(s', a'))."""
    best_B1 = next_q_online_BA.argmax(dim=1, keepdim=True)
    return (returns_B + discount_B * next_q_target_BA.gather(1, best_B1).squeeze(1)).detach()


def q_taken(*, q_BA: torch.Tensor, actions_B: torch.Tensor) -> torch.Tensor:
    """Q(s, a) of the actions taken."""
    return q_BA.gather(1, actions_B.long().unsqueeze(1)).squeeze(1)


def huber_td_loss(
    *, q_B: torch.Tensor, target_B: torch.Tensor, weights_B: torch.Tensor, delta: float = 1.0
) -> torch.Tensor:
    """Importance-weighted Huber loss of the TD error (quadratic within +-delta, linear beyond):

    L = mean_i[ w_i * huber_delta(Q(s_i, a_i) - y_i) ]
    """
    per_sample = F.huber_loss(q_B, target_B.detach(), reduction="none", delta=delta)
    return (weights_B * per_sample).mean()


def dueling_q(*, value_B1: torch.Tensor, advantages_BA: torch.Tensor) -> torch.Tensor:
    """Dueling aggregation (Wang et al. 2016): Q = V + A - mean_a A."""
    return value_B1 + advantages_BA - advantages_BA.mean(dim=1, keepdim=True)
