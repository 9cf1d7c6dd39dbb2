"""PPO's loss and its minibatch plan, as pure functions (Schulman et al. 2017).

Shape suffix legend: ``_B`` is the batch axis (one entry per time step of the minibatch).
Every mean over the minibatch is taken by ``mean`` (``torch.mean`` by default); several
data-parallel Learners each pass their share of the minibatch mean (``BatchStats``), so that
DDP's average of their gradients is the gradient of the whole minibatch's mean.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from algorithms.common.pg_losses import Mean, total_loss


@dataclasses.dataclass
class PPOTerms:
    """The minibatch's loss and what it is made of (the last five detached)."""

    total: torch.Tensor
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def clipped_surrogate(
    *,
    logp_B: torch.Tensor,
    old_logp_B: torch.Tensor,
    advantages_B: torch.Tensor,
    clip: float,
    mean: Mean = torch.mean,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped surrogate objective, as a loss, and the ratios r_t:

        r_t = pi(a_t|s_t) / pi_old(a_t|s_t) = exp(log pi - log pi_old)
        L_clip = -mean_t[ min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ]

    The minimum makes it a pessimistic bound: a step that raises r_t past 1 + eps on a
    positive advantage (or lowers it under 1 - eps on a negative one) gains nothing more.
    ``old_logp_B`` and ``advantages_B`` are data (detached)."""
    ratio_B = torch.exp(logp_B - old_logp_B.detach())
    adv_B = advantages_B.detach()
    surrogate_B = torch.minimum(ratio_B * adv_B, ratio_B.clamp(1.0 - clip, 1.0 + clip) * adv_B)
    return -mean(surrogate_B), ratio_B


def clipped_value_loss(
    *,
    values_B: torch.Tensor,
    old_values_B: torch.Tensor,
    returns_B: torch.Tensor,
    vf_clip: float | None,
    mean: Mean = torch.mean,
) -> torch.Tensor:
    """The value regression, plain mean squared error (as A2C's, so ``vf_coeff`` weighs the same
    term): mean_t[(V(s_t) - R_t)^2]. With ``vf_clip`` (the PPO implementations' value
    clipping), the prediction may move at most vf_clip from the one that sampled the batch, and
    the larger of the two errors counts:

        V_clip = V_old + clip(V - V_old, -c, c)
        L_V = mean_t[ max((V - R)^2, (V_clip - R)^2) ]"""
    target_B = returns_B.detach()
    error_B = (values_B - target_B).pow(2)
    if vf_clip is None:
        return mean(error_B)
    old_B = old_values_B.detach()
    clipped_B = old_B + (values_B - old_B).clamp(-vf_clip, vf_clip)
    return mean(torch.maximum(error_B, (clipped_B - target_B).pow(2)))


def ppo_loss(
    *,
    logp_B: torch.Tensor,
    old_logp_B: torch.Tensor,
    advantages_B: torch.Tensor,
    entropy_B: torch.Tensor,
    values_B: torch.Tensor,
    old_values_B: torch.Tensor,
    returns_B: torch.Tensor,
    clip: float,
    vf_clip: float | None,
    vf_coeff: float,
    entropy_coeff: float,
    mean: Mean = torch.mean,
    stat_mean: Mean | None = None,
) -> PPOTerms:
    """L = L_clip + vf_coeff * L_V - entropy_coeff * H[pi], with ``advantages_B`` already
    normalized as configured. Also the approximate KL divergence of the old policy from the
    new one, mean_t[(r_t - 1) - log r_t] (non-negative, unbiased; Schulman's k3 estimator),
    and the share of steps whose ratio lies outside [1 - eps, 1 + eps]: both means over the
    whole minibatch by ``stat_mean`` (default ``mean``; with several Learners, where ``mean``
    is a Learner's share, ``BatchStats.mean``)."""
    stat_mean = stat_mean or mean
    policy_loss, ratio_B = clipped_surrogate(
        logp_B=logp_B, old_logp_B=old_logp_B, advantages_B=advantages_B, clip=clip, mean=mean
    )
    value_loss = clipped_value_loss(
        values_B=values_B, old_values_B=old_values_B, returns_B=returns_B, vf_clip=vf_clip,
        mean=mean,
    )  # fmt: skip
    entropy = mean(entropy_B)
    total = total_loss(
        policy_loss=policy_loss, value_loss=value_loss, entropy=entropy, vf_coeff=vf_coeff,
        entropy_coeff=entropy_coeff,
    )  # fmt: skip
    with torch.no_grad():
        log_ratio_B = logp_B.detach() - old_logp_B.detach()
        approx_kl = stat_mean(torch.expm1(log_ratio_B) - log_ratio_B)
        clip_fraction = stat_mean(((ratio_B.detach() - 1.0).abs() > clip).to(ratio_B.dtype))
    return PPOTerms(
        total=total, policy_loss=policy_loss.detach(), value_loss=value_loss.detach(),
        entropy=entropy.detach(), approx_kl=approx_kl, clip_fraction=clip_fraction,
    )  # fmt: skip


def minibatch_rows(
    global_rows: np.ndarray,
    *,
    num_rows: int,
    num_minibatches: int,
    num_epochs: int,
    seed: np.random.SeedSequence | int | list[int],
) -> list[list[np.ndarray]]:
    """The plan of one batch's update: for each epoch, for each minibatch, the local rows it
    holds (indices into this Learner's shard, in minibatch order).

    ``global_rows[i]`` is local row i's place in the whole batch of ``num_rows`` rows (every
    Learner's shard, in one order all Learners agree on). Each epoch shuffles the whole batch
    with a generator seeded by ``seed`` (the same on every Learner) and cuts it into
    ``num_minibatches`` parts of sizes differing by at most one; a Learner keeps its own rows
    of each part. One Learner holding every row gets the very minibatches that two Learners
    holding half each get between them."""
    rng = np.random.default_rng(seed)
    global_rows = np.asarray(global_rows, dtype=np.int64)
    plan = []
    for _ in range(num_epochs):
        perm = rng.permutation(num_rows)
        place = np.empty(num_rows, dtype=np.int64)
        place[perm] = np.arange(num_rows)  # where each global row lands in the shuffled batch
        bounds = np.linspace(0, num_rows, num_minibatches + 1).round().astype(np.int64)
        landed = place[global_rows]
        order = np.argsort(landed, kind="stable")
        cuts = np.searchsorted(landed[order], bounds[1:-1])
        plan.append(np.split(order, cuts))
    return plan
