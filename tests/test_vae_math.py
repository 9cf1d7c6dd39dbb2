"""Tier 1: the VAE's objective. Closed-form KL against torch.distributions, the signs of the
ELBO terms, and the importance-weighted bound: >= the ELBO on average, non-decreasing in K."""

import math

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
