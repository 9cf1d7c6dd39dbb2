"""Policy-gradient losses shared by REINFORCE and A2C, as pure torch functions, one equation each.

Shape suffix legend: ``_B`` is the batch axis (one entry per time step of the batch).
"""

from __future__ import annotations

import torch


def advantages(*, returns_B: torch.Tensor, baseline_B: torch.Tensor) -> torch.Tensor:
    """A_t = G_t - b(s_t), detached: the baseline changes the variance of the policy
    gradient, never its expectation, and receives no gradient from the policy term."""
    return (returns_B - baseline_B).detach()


def normalize(advantages_B: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(A - mean A) / (std A + eps) over the batch; a batch of one is only centred."""
    centred = advantages_B - advantages_B.mean()
    if advantages_B.numel() < 2:
        return centred
    return centred / (advantages_B.std() + eps)


def policy_gradient_loss(*, logp_B: torch.Tensor, advantages_B: torch.Tensor) -> torch.Tensor:
    """Monte-Carlo policy gradient (Williams 1992; Sutton & Barto section 13.4):

        L_pi = -mean_t[ log pi(a_t|s_t) * A_t ]

    Its gradient is the REINFORCE estimator; ``advantages_B`` is detached here again so the
    only path for the gradient is through log pi.
    """
    return -(logp_B * advantages_B.detach()).mean()


def value_loss(*, values_B: torch.Tensor, returns_B: torch.Tensor) -> torch.Tensor:
    """Regression of the learned baseline on the Monte-Carlo returns:

    L_V = 1/2 mean_t[ (V(s_t) - G_t)^2 ]
    """
    return 0.5 * (values_B - returns_B.detach()).pow(2).mean()


def total_loss(
    *,
    policy_loss: torch.Tensor,
    value_loss: torch.Tensor,
    entropy: torch.Tensor,
    vf_coeff: float,
    entropy_coeff: float,
) -> torch.Tensor:
    """L = L_pi + vf_coeff * L_V - entropy_coeff * H[pi]  (entropy is a bonus, so subtracted)."""
    return policy_loss + vf_coeff * value_loss - entropy_coeff * entropy


def policy_gradient_objective(
    *,
    logp_B: torch.Tensor,
    entropy_B: torch.Tensor,
    advantages_B: torch.Tensor,
    value_loss: torch.Tensor,
    normalize_advantages: bool,
    vf_coeff: float,
    entropy_coeff: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole loss of REINFORCE and A2C from per-step terms: (optionally standardized)
    advantages into the policy gradient, plus the weighted value loss, minus the entropy bonus.
    Returns (total, policy loss, mean entropy)."""
    adv_B = normalize(advantages_B) if normalize_advantages else advantages_B
    policy_loss = policy_gradient_loss(logp_B=logp_B, advantages_B=adv_B)
    entropy = entropy_B.mean()
    total = total_loss(
        policy_loss=policy_loss,
        value_loss=value_loss,
        entropy=entropy,
        vf_coeff=vf_coeff,
        entropy_coeff=entropy_coeff,
    )
    return total, policy_loss, entropy
