"""The VAE's objective, one equation per function (pure torch, per image: shape ``(B,)``).

Notation of the lecture: encoder q(z|x) = N(mu, diag(exp(logvar))), prior p(z) = N(0, I),
decoder p(x|z). Shape suffixes: ``_B`` batch, ``_BZ`` batch x latent, ``_KB`` samples x batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mu_BZ: torch.Tensor, logvar_BZ: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) in closed form:
    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)."""
    return 0.5 * (mu_BZ.pow(2) + logvar_BZ.exp() - 1.0 - logvar_BZ).sum(dim=-1)


def reparameterize(mu_BZ: torch.Tensor, logvar_BZ: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample whose gradient flows to mu and sigma."""
    return mu_BZ + (0.5 * logvar_BZ).exp() * torch.randn_like(mu_BZ)


def log_normal(z_BZ: torch.Tensor, mu_BZ: torch.Tensor, logvar_BZ: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the latent dimensions."""
    return -0.5 * (LOG_2PI + logvar_BZ + (z_BZ - mu_BZ).pow(2) / logvar_BZ.exp()).sum(dim=-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for binary x, Bernoulli(sigmoid(logits)) per pixel, summed per image."""
    ll = -F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
    return ll.flatten(1).sum(dim=1)


def categorical_log_likelihood(logits_B256: torch.Tensor, x_uint8: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for 8-bit x: a 256-way softmax per pixel and channel (logits (B, 256, ...)),
    summed per image."""
    ll = -F.cross_entropy(logits_B256, x_uint8.long(), reduction="none")
    return ll.flatten(1).sum(dim=1)


def negative_elbo(
    *, log_likelihood_B: torch.Tensor, kl_B: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """-ELBO = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)) (one z sample; beta = 1 is the true
    bound, so -ELBO >= -log p(x))."""
    return -log_likelihood_B + beta * kl_B


def importance_weighted_bound(log_weights_KB: torch.Tensor) -> torch.Tensor:
    """log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al. 2016):
    logsumexp over the K samples minus log K. K = 1 is the ELBO; it tightens as K grows."""
    k = log_weights_KB.shape[0]
    return torch.logsumexp(log_weights_KB, dim=0) - math.log(k)


def bits_per_dim(nats_B: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """Nats per image -> bits per dimension: nats / (dims * ln 2)."""
    return nats_B / (dims * math.log(2.0))
