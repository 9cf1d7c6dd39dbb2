"""Tier 1: the VAE's objective. Closed-form KL against torch.distributions and by hand; the
forward pass against a reference (one reparameterized sample, closed-form KL, -ELBO = their
sum); the importance-weighted NLL on models whose likelihood is known exactly: above the true
NLL, K = 1 equal to the -ELBO, strictly tighter for K > 1, reaching the true NLL as K grows."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence

from generative.vae import losses
from generative.vae.model import VAE


def test_closed_form_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 8), torch.randn(16, 8)
    q = Normal(mu, (0.5 * logvar).exp())
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = kl_divergence(q, p).sum(dim=-1)
    torch.testing.assert_close(losses.gaussian_kl(mu, logvar), expected, rtol=1e-5, atol=1e-5)
    assert float(losses.gaussian_kl(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0
    # By hand: mu = 1, sigma^2 = 1 gives 1/2; mu = 0, sigma^2 = 4 gives (4 - 1 - ln 4) / 2.
    kl = losses.gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]]))
    assert float(kl) == pytest.approx(0.5 + 1.5 - math.log(2.0), rel=1e-6)


def test_log_normal_matches_torch_distributions():
    torch.manual_seed(1)
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(losses.log_normal(z, mu, logvar), expected, rtol=1e-5, atol=1e-5)


def _reference_log_likelihood(logits, x, likelihood):
    """log p(x|z) summed per image, through torch.distributions."""
    if likelihood == "bernoulli":
        return Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    return Categorical(logits=logits.movedim(1, -1)).log_prob(x.long()).flatten(1).sum(1)


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical"])
def test_forward_is_one_reparameterized_sample_and_the_closed_form_kl(likelihood):
    """model(x) = (log p(x|z) at z = mu + sigma * eps, KL(q || N(0, I))); -ELBO = -log p(x|z)
    + beta * KL exactly."""
    torch.manual_seed(2)
    model = VAE((1, 8, 8), latent_dim=4, hidden=32, likelihood=likelihood)
    if likelihood == "bernoulli":
        x = (torch.rand(10, 1, 8, 8) > 0.5).float()
    else:
        x = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(7)
    log_lik, kl = model(x)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        torch.manual_seed(7)  # the same eps as the forward pass drew
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        expected = _reference_log_likelihood(model.decode(z), x, likelihood)
        sigma = (0.5 * logvar).exp()
        expected_kl = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(log_lik, expected, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(kl, expected_kl, rtol=1e-5, atol=1e-5)
    neg_elbo = losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl)
    assert torch.equal(neg_elbo, -log_lik + kl)
    half = losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl, beta=0.5)
    assert torch.equal(half, -log_lik + 0.5 * kl)  # beta weights the KL term only


def test_categorical_decoder_log_likelihood():
    logits = torch.zeros(2, 256, 1, 2, 2)  # uniform over 256 levels
    x = torch.randint(0, 256, (2, 1, 2, 2), dtype=torch.uint8)
    ll = losses.categorical_log_likelihood(logits, x)
    torch.testing.assert_close(ll, torch.full((2,), -4 * math.log(256)))
    assert losses.bits_per_dim(-float(ll[0]), 4) == pytest.approx(8.0)


A = 4.0  # the one-pixel model's decoder logit is A * z_1


def _one_pixel_vae():
    """A VAE with a known likelihood. One binary pixel, two latents; decoder p(x = 1 | z) =
    sigmoid(A z_1), so p(x) = E_{z ~ N(0, 1)}[sigmoid(+-A z_1)] = 1/2 for x = 1 and x = 0
    (sigmoid(-t) = 1 - sigmoid(t) and z_1 is symmetric): -log p(x) = ln 2 exactly. Encoder
    q(z|x) = N(+-0.8, 1/2) x N(-0.5, 2) (sign: + for x = 1), not the posterior, and with a
    second latent the decoder ignores, which the importance weights must still correct."""
    model = VAE((1, 1, 1), latent_dim=2, hidden=2)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        enc, dec = model.encoder, model.decoder
        enc[1].weight.copy_(torch.tensor([[1.0], [0.0]]))  # relu(x) = x for x in {0, 1}
        enc[3].weight.copy_(torch.eye(2))
        enc[5].weight[0, 0] = 1.6  # mu_1 = 1.6 x - 0.8
        enc[5].bias.copy_(torch.tensor([-0.8, -0.5, math.log(0.5), math.log(2.0)]))
        dec[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))  # relu(z_1), relu(-z_1)
        dec[2].weight.copy_(torch.eye(2))
        dec[4].weight.copy_(torch.tensor([[A, -A]]))  # A z_1
    return model


def _one_pixel_neg_elbo():
    """-ELBO of ``_one_pixel_vae`` (the same for x = 0 and 1): -E_q[log sigmoid(A z_1)] by
    Gauss-Hermite quadrature, plus the KL from torch.distributions."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(100)
    z1 = 0.8 + math.sqrt(0.5) * nodes
    expected_log_lik = float(np.sum(weights * -np.logaddexp(0.0, -A * z1)) / weights.sum())
    q = Normal(torch.tensor([0.8, -0.5]), torch.tensor([0.5, 2.0]).sqrt())
    kl = float(kl_divergence(q, Normal(0.0, 1.0)).sum())
    return -expected_log_lik + kl


def test_importance_weighted_nll_against_the_exact_likelihood():
    """The K-sample bound on a model whose NLL is ln 2 and whose -ELBO is 1.0008 nats: K = 1
    is the -ELBO, every K stays above ln 2, K = 10 is already strictly tighter than the ELBO,
    it keeps tightening, and K = 1000 reaches ln 2 (within Monte Carlo error)."""
    model = _one_pixel_vae()
    x = torch.tensor([1.0, 0.0]).repeat(2000).view(-1, 1, 1, 1)
    neg_elbo, ln2 = _one_pixel_neg_elbo(), math.log(2.0)
    assert neg_elbo == pytest.approx(1.0008, abs=1e-4)
    with torch.no_grad():
        torch.manual_seed(0)
        log_lik, kl = model(x)
    single = losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl).double()
    assert abs(float(single.mean()) - neg_elbo) < 4 * float(single.std()) / len(x) ** 0.5
    nll, se = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 1,000 small steps: faster alone than contended on 2 cores
    try:
        for k in (1, 10, 100, 1000):
            torch.manual_seed(k)
            per_image = model.importance_weighted_nll(x, k).double()
            nll[k], se[k] = float(per_image.mean()), float(per_image.std()) / len(x) ** 0.5
    finally:
        torch.set_num_threads(threads)
    for k in nll:
        assert nll[k] > ln2 - 4 * se[k]  # an upper bound on the NLL
    assert abs(nll[1] - neg_elbo) < 4 * se[1]  # K = 1 is the ELBO
    assert nll[10] < neg_elbo - 0.25  # strictly tighter: the gap is KL(q || posterior) = 0.31
    assert nll[1] > nll[10] + 0.2 and nll[10] > nll[100] + 0.005  # E[NLL_K]: 1.00, 0.71, 0.69
    assert abs(nll[1000] - ln2) < 0.002


def test_importance_weighted_nll_is_exact_when_q_is_the_posterior():
    """Decoder independent of z (p(x|z) = Bernoulli(sigmoid(b)) per pixel) and q = N(0, I) =
    the prior = the posterior: every weight is p(x), so the bound equals -log p(x) for every
    K, and so does the -ELBO (KL = 0)."""
    torch.manual_seed(3)
    model = VAE((1, 4, 4), latent_dim=3, hidden=8)
    bias = torch.randn(16)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.decoder[-1].bias.copy_(bias)
    x = (torch.rand(6, 1, 4, 4) > 0.5).float()
    exact = -Bernoulli(logits=bias).log_prob(x.flatten(1)).sum(1)
    log_lik, kl = model(x)
    assert torch.equal(kl, torch.zeros(6))
    torch.testing.assert_close(-log_lik.detach(), exact)
    for k in (1, 7, 50):
        torch.testing.assert_close(model.importance_weighted_nll(x, k), exact)


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
    # Samples are the decoder's mean at z ~ N(0, I) drawn from the generator: the pixel
    # probabilities, or the expected 8-bit level / 255.
    samples = model.sample(4, generator=torch.Generator().manual_seed(9))
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        logits = model.decode(z)
    if likelihood == "bernoulli":
        mean = Bernoulli(logits=logits).mean
    else:
        mean = Categorical(logits=logits.movedim(1, -1)).probs @ torch.arange(256.0) / 255
    assert samples.shape == (4, *shape)
    torch.testing.assert_close(samples, mean)
