"""Tier 1: the PixelCNN's masks, likelihood and sampling.

Causality: for random inputs and weights, the output at each position and colour has exactly
zero gradient with respect to the input at that position's own and later colours and at every
later pixel (mask A/B, colour order R -> G -> B, both variants). The gated variant sees every
earlier value (no blind spot); the plain stack has the blind spot the paper describes."""

import math

import pytest
import torch

from generative.pixelcnn import losses
from generative.pixelcnn.model import PixelCNN, spatial_channel_mask
from generative.pixelcnn.train import complete, sample


def _dependency(model, shape, trials=3):
    """dep[ch, r, col, cc, rr, cl]: does output (ch, r, col) depend on input (cc, rr, cl)?"""
    c, h, w = shape
    dep = torch.zeros(c, h, w, c, h, w, dtype=torch.bool)
    for t in range(trials):  # several random inputs, so a ReLU that is off once is no hole
        torch.manual_seed(100 + t)
        scale = 1.0 if model.likelihood == "bernoulli" else 255.0
        x = (torch.rand(1, c, h, w) * scale).requires_grad_(True)
        out = model(x)
        for ch in range(c):
            for r in range(h):
                for col in range(w):
                    o = (
                        out[0, ch, r, col]
                        if model.likelihood == "bernoulli"
                        else out[0, :, ch, r, col].sum()
                    )
                    (g,) = torch.autograd.grad(o, x, retain_graph=True)
                    dep[ch, r, col] |= g[0] != 0
    return dep


def _allowed(shape):
    c, h, w = shape
    allowed = torch.zeros(c, h, w, c, h, w, dtype=torch.bool)
    for ch in range(c):
        for r in range(h):
            for col in range(w):
                for cc in range(c):
                    for rr in range(h):
                        for cl in range(w):
                            earlier = (rr, cl) < (r, col) or ((rr, cl) == (r, col) and cc < ch)
                            allowed[ch, r, col, cc, rr, cl] = earlier
    return allowed


@pytest.mark.parametrize("variant", ["plain", "gated"])
@pytest.mark.parametrize("shape,likelihood", [((1, 6, 6), "bernoulli"), ((3, 3, 6), "categorical")])
def test_no_output_depends_on_its_own_or_later_values(variant, shape, likelihood):
    torch.manual_seed(0)
    model = PixelCNN(
        shape, variant=variant, features=24, layers=3, output_features=48, likelihood=likelihood
    )
    dep, allowed = _dependency(model, shape), _allowed(shape)
    assert not (dep & ~allowed).any(), "an output sees its own or a later input value"
    if variant == "gated":
        assert torch.equal(dep, allowed)  # every earlier value reaches every later output
    else:
        assert (allowed & ~dep).any()  # the plain stack's blind spot (above-right pixels)


def test_mask_a_hides_the_centre_mask_b_shows_earlier_colours():
    a = spatial_channel_mask(3, 3, 3, mask_type="A", channels=3)
    b = spatial_channel_mask(3, 3, 3, mask_type="B", channels=3)
    assert a[:, :, 0].sum() == 27 and a[:, :, 2].sum() == 0  # row above all seen, below none
    # Centre, output colour x input colour: A strictly lower triangle, B with the diagonal.
    assert torch.equal(a[:, :, 1, 1], torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]]))
    assert torch.equal(b[:, :, 1, 1], torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 1, 1]]))
    assert a[:, :, 1, 2].sum() == 0  # the pixel to the right


def test_probability_one_half_everywhere_is_exactly_one_bit_per_dim():
    x = (torch.rand(5, 1, 28, 28) > 0.5).float()
    nats = losses.nll(torch.zeros(5, 1, 28, 28), x, "bernoulli")
    torch.testing.assert_close(nats, torch.full((5,), 784 * math.log(2)))
    assert losses.bits_per_dim(float(nats.mean()), 784) == pytest.approx(1.0)


def _degenerate(likelihood, value):
    """A model whose every conditional puts (nearly) all mass on ``value``."""
    shape = (1, 5, 4) if likelihood == "bernoulli" else (3, 3, 3)
    model = PixelCNN(shape, features=12, layers=1, output_features=12, likelihood=likelihood)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        last = model.head[-1]
        if likelihood == "bernoulli":
            last.bias.fill_(50.0 if value else -50.0)
        else:
            last.bias.view(3, 256)[:, value] = 50.0
    return model


@pytest.mark.parametrize(
    "likelihood,value", [("bernoulli", 1), ("bernoulli", 0), ("categorical", 77)]
)
def test_degenerate_model_samples_as_predicted(likelihood, value):
    model = _degenerate(likelihood, value)
    out = sample(model, 4, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.all(out == value)


def test_completion_keeps_the_top_half():
    model = _degenerate("bernoulli", 1)
    x = torch.zeros(2, 1, 5, 4)
    out = complete(model, x, generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.all(out[:, :, :2] == 0) and torch.all(out[:, :, 2:] == 1)  # rows 0-1 kept


def test_samples_follow_the_conditionals():
    """With p(x_i = 1) = sigmoid(b) everywhere, the sample mean matches it."""
    model = _degenerate("bernoulli", 1)
    with torch.no_grad():
        model.head[-1].bias.fill_(math.log(0.3 / 0.7))  # p = 0.3
    out = sample(model, 200, generator=torch.Generator().manual_seed(0), progress=False)
    assert abs(float(out.mean()) - 0.3) < 0.03
