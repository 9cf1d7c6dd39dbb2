"""Policy-gradient losses shared by REINFORCE and A2C, as pure torch functions, one equation each.

Shape suffix legend: ``_B`` is the batch axis (one entry per time step of the batch).

Every "mean over the batch" is taken by ``mean`` (``torch.mean`` by default). With several
data-parallel Learners, each passes its share of the batch mean (``BatchStats.share_of_mean``),
so that the Learners' gradients, averaged by DDP, are the gradient of the mean over the whole
batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

Mean = Callable[[torch.Tensor], torch.Tensor]


def logp_and_entropy(dist_cls: Any, inputs_B: torch.Tensor, actions_B: torch.Tensor):
    """log pi(a_t|s_t) and the entropy H[pi(.|s_t)] per step, from the policy's distribution
    inputs. For RLlib's ``TorchCategorical`` both come from one log-softmax of the logits (the
    same values, without a torch distribution object and its argument checks, which cost more
    than the rest of a small MLP's loss); other distributions are RLlib's own."""
    if dist_cls is TorchCategorical:
        logp_BA = torch.log_softmax(inputs_B, dim=-1)
        logp_B = logp_BA.gather(-1, actions_B.long().unsqueeze(-1)).squeeze(-1)
        # as torch's Categorical: -inf logits count 0 * (most negative float), not nan
        finite_BA = logp_BA.clamp(min=torch.finfo(logp_BA.dtype).min)
        return logp_B, -(logp_BA.exp() * finite_BA).sum(dim=-1)
    dist = dist_cls.from_logits(inputs_B)
    # RLlib types a torch distribution's outputs as any framework's tensor.
    return cast(torch.Tensor, dist.logp(actions_B)), cast(torch.Tensor, dist.entropy())


def advantages(*, returns_B: torch.Tensor, baseline_B: torch.Tensor) -> torch.Tensor:
    """A_t = G_t - b(s_t), detached: the baseline changes the variance of the policy
    gradient, never its expectation, and receives no gradient from the policy term."""
    return (returns_B - baseline_B).detach()


ADVANTAGE_NORMALIZATIONS = ("none", "scale", "centre_and_scale")


def scale_advantages(
    advantages_B: torch.Tensor, *, rms: torch.Tensor | float, eps: float = 1e-8
) -> torch.Tensor:
    """A_t / (rms(A) + eps), with rms(A) = sqrt(mean_t A_t^2) over the batch.

    Scale only, never centred: subtracting the batch mean would itself be a baseline (a
    constant per batch) and would wipe out whatever constant baseline was chosen. The root mean
    square, not the standard deviation: a batch of equal advantages (every episode cut by the
    time limit with whole-episode returns and a constant b, or one episode per batch) has std 0
    and would be multiplied by 1/eps; its rms is |A|, so each A_t becomes +-1. All-zero
    advantages stay 0."""
    return advantages_B / (rms + eps)


def centre_and_scale_advantages(
    advantages_B: torch.Tensor,
    *,
    mean: torch.Tensor | float,
    std: torch.Tensor | float,
    eps: float = 1e-8,
) -> torch.Tensor:
    """(A_t - mean(A)) / (std(A) + eps), the mean and the (divided by N) standard deviation
    taken over the batch.

    Centring is one more baseline, the batch's mean advantage, on top of b(s_t): after a
    learned V(s) it only removes what V has not yet caught up with (standard practice, and
    harmless); after a constant b it would replace b by the batch mean, so the constant
    baselines use ``scale_advantages``. Equal advantages become exactly 0 (no update)."""
    return (advantages_B - mean) / (std + eps)


def normalize_advantages(
    advantages_B: torch.Tensor, mode: str, *, batch_mean: Mean = torch.mean
) -> torch.Tensor:
    """The advantages under ``mode`` (one of ``ADVANTAGE_NORMALIZATIONS``): as they are,
    ``scale_advantages`` or ``centre_and_scale_advantages``.

    ``batch_mean`` is the (detached) mean over the whole batch, however many Learners share it
    (``BatchStats.mean``). The statistics are taken in float64, so equal advantages have a mean
    equal to each of them and centre to exactly 0; the std in two passes (the mean, then the
    mean squared deviation from it), which stays exact where E[A^2] - E[A]^2 would cancel."""
    if mode == "none":
        return advantages_B
    x_B = advantages_B.detach().double()
    if mode == "scale":
        rms = batch_mean(x_B.pow(2)).sqrt()
        return scale_advantages(advantages_B, rms=rms.to(advantages_B.dtype))
    if mode == "centre_and_scale":
        mean = batch_mean(x_B)
        std = batch_mean((x_B - mean).pow(2)).sqrt()
        dtype = advantages_B.dtype
        return centre_and_scale_advantages(advantages_B, mean=mean.to(dtype), std=std.to(dtype))
    raise ValueError(f"advantage normalization {mode!r}: must be one of {ADVANTAGE_NORMALIZATIONS}")


def policy_gradient_loss(
    *, logp_B: torch.Tensor, advantages_B: torch.Tensor, mean: Mean = torch.mean
) -> torch.Tensor:
    """Monte-Carlo policy gradient (Williams 1992; Sutton & Barto section 13.4):

        L_pi = -mean_t[ log pi(a_t|s_t) * A_t ]

    Its gradient is the REINFORCE estimator; ``advantages_B`` is detached here again so the
    only path for the gradient is through log pi.
    """
    return -mean(logp_B * advantages_B.detach())


def value_loss(
    *, values_B: torch.Tensor, returns_B: torch.Tensor, mean: Mean = torch.mean
) -> torch.Tensor:
    """Regression of the value function on its targets G_t (REINFORCE: the Monte-Carlo
    returns; A2C: A_t + V(s_t)), the plain mean squared error:

        L_V = mean_t[ (V(s_t) - G_t)^2 ]

    Without a factor 1/2, as in the A2C baselines (and Stable-Baselines3), so that ``vf_coeff``
    weighs the same term there and here: their vf_coef = 0.5 is a value weight of 0.5 * MSE.
    """
    return mean((values_B - returns_B.detach()).pow(2))


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
    vf_coeff: float,
    entropy_coeff: float,
    mean: Mean = torch.mean,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole loss of REINFORCE and A2C from per-step terms: the (normalized) advantages
    into the policy gradient, plus the weighted value loss, minus the entropy bonus. Returns
    (total, policy loss, mean entropy)."""
    policy_loss = policy_gradient_loss(logp_B=logp_B, advantages_B=advantages_B, mean=mean)
    entropy = mean(entropy_B)
    total = total_loss(
        policy_loss=policy_loss,
        value_loss=value_loss,
        entropy=entropy,
        vf_coeff=vf_coeff,
        entropy_coeff=entropy_coeff,
    )
    return total, policy_loss, entropy
