"""The PixelCNN's exact likelihood, per image: -log p(x) = -sum_i log p(x_i | x_<i)."""

from __future__ import annotations

from generative.vae.losses import (
    bernoulli_log_likelihood,
    bits_per_dim,
    categorical_log_likelihood,
)

__all__ = ["nll", "bits_per_dim"]


def nll(logits, x, likelihood: str):  # type: ignore[no-untyped-def]
    """Negative log-likelihood in nats per image from the model's conditionals at every
    position (the same Bernoulli / 256-way terms as the VAE's decoder)."""
    if likelihood == "bernoulli":
        return -bernoulli_log_likelihood(logits, x)
    return -categorical_log_likelihood(logits, x)
