"""Tier 1: the VAE's objective. Closed-form KL against torch.distributions, the signs of the
ELBO terms, and the importance-weighted bound: >= the ELBO on average, non-decreasing in K."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from generative.vae import losses
from generative.vae.model import VAE


def test_closed_form_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 8), torch.randn(16, 8)
    q = Normal(mu, (0.5 * logvar).exp())
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = kl_divergence(q, p).sum(dim=-1)
    torch.testing.assert_close(losses.gaussian_kl(mu, logvar), expected, rtol=1e-5, atol=1e-5)
    assert torch.all(losses.gaussian_kl(mu, logvar) >= 0)
    assert float(losses.gaussian_kl(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0


def test_log_normal_matches_torch_distributions():
    torch.manual_seed(1)
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(losses.log_normal(z, mu, logvar), expected, rtol=1e-5, atol=1e-5)


def test_elbo_terms_signs():
    torch.manual_seed(2)
    model = VAE((1, 8, 8), latent_dim=4, hidden=32)
    x = (torch.rand(10, 1, 8, 8) > 0.5).float()
    log_lik, kl = model(x)
    assert torch.all(log_lik <= 0)  # log-probabilities of binary pixels
    assert torch.all(kl >= 0)
    neg_elbo = losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl)
    assert torch.all(neg_elbo >= -log_lik)  # the KL only adds
    # beta weights the KL term only.
    half = losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl, beta=0.5)
    torch.testing.assert_close(neg_elbo - half, 0.5 * kl)


def test_categorical_decoder_log_likelihood():
    logits = torch.zeros(2, 256, 1, 2, 2)  # uniform over 256 levels
    x = torch.randint(0, 256, (2, 1, 2, 2), dtype=torch.uint8)
    ll = losses.categorical_log_likelihood(logits, x)
    torch.testing.assert_close(ll, torch.full((2,), -4 * math.log(256)))
    assert losses.bits_per_dim(-float(ll[0]), 4) == pytest.approx(8.0)


def test_importance_weighted_bound_tightens_with_k():
    torch.manual_seed(3)
    model = VAE((1, 8, 8), latent_dim=4, hidden=32)
    x = (torch.rand(64, 1, 8, 8) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):  # a fixed model whose posterior differs from the prior
        optimizer.zero_grad()
        log_lik, kl = model(x)
        losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl).mean().backward()
        optimizer.step()
    with torch.no_grad():
        log_lik, kl = model(x)
        elbo_nll = float(losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl).mean())
        nll = {}
        for k in (1, 5, 50, 500):
            torch.manual_seed(10)
            nll[k] = float(model.importance_weighted_nll(x, k).mean())
    # K = 1 estimates the ELBO itself; larger K gives a tighter (lower) NLL bound.
    assert nll[1] == pytest.approx(elbo_nll, rel=0.05)
    assert nll[500] <= nll[50] + 0.05 <= nll[5] + 0.1 <= nll[1] + 0.15
    assert nll[500] < nll[1] - 0.1


def test_bound_of_identical_weights_is_exact():
    log_w = torch.full((7, 3), -2.5)
    torch.testing.assert_close(losses.importance_weighted_bound(log_w), torch.full((3,), -2.5))


@pytest.mark.parametrize(
    "shape,arch,likelihood",
    [((1, 28, 28), "conv", "bernoulli"), ((3, 32, 32), "conv", "categorical"),
     ((3, 8, 8), "mlp", "categorical")],
)  # fmt: skip
def test_variants_shapes_and_gradients(shape, arch, likelihood):
    torch.manual_seed(4)
    model = VAE(shape, arch=arch, latent_dim=6, hidden=64, likelihood=likelihood)
    if likelihood == "bernoulli":
        x = (torch.rand(3, *shape) > 0.5).float()
    else:
        x = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    log_lik, kl = model(x)
    assert log_lik.shape == kl.shape == (3,)
    losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    samples = model.sample(4)
    assert samples.shape == (4, *shape) and 0 <= float(samples.min()) <= float(samples.max()) <= 1
    if likelihood == "categorical":  # 8 bits per dim at most for an untrained 256-way model
        nll_bits = losses.bits_per_dim(float(-log_lik.detach().mean()), int(np.prod(shape)))
        assert 7.0 < nll_bits < 9.5
