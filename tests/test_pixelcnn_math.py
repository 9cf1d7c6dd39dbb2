"""Tier 1: the PixelCNN's masks, likelihood and sampling.

Causality: for random inputs and weights, the output at each position and colour has exactly
zero gradient with respect to the input at that position's own and later colours and at every
later pixel (mask A/B, colour order R -> G -> B, both variants). The gated variant sees every
earlier value (no blind spot); the plain stack has the blind spot the paper describes.

Likelihood: exp(-NLL) sums to 1 over every image of a tiny shape; the job's test metrics are
the exact NLL of hand-built models with a known distribution, and bits/dim = nats / (D ln 2).

Sampling and completion: hand-built causal models whose conditionals are sure functions of
earlier draws (raster predecessor, the pixel above and to the right, R before G before B), so
only the exact raster-order, one-value-at-a-time sampler reproduces their rules. The cached
sampler is checked against it in ``test_pixelcnn_cache.py``."""

import math

import pytest
import torch

from generative.pixelcnn import losses
from generative.pixelcnn.config import PixelCNNConfig
from generative.pixelcnn.model import PixelCNN, spatial_channel_mask
from generative.pixelcnn.sampling import complete, sample
from generative.pixelcnn.train import PixelCNNJob


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


@pytest.mark.parametrize(
    "variant,shape,likelihood",
    [("plain", (1, 2, 3), "bernoulli"), ("gated", (1, 2, 3), "bernoulli"),
     ("gated", (1, 1, 2), "categorical")],
)  # fmt: skip
def test_exact_likelihood_sums_to_one_over_every_image(variant, shape, likelihood):
    """exp(-NLL) of a PixelCNN with random, sharpened weights is a distribution: summed over
    all 2^6 binary 2x3 images (or all 256^2 two-pixel 8-bit images) it is 1, while the
    probabilities themselves vary by orders of magnitude. A conditional that saw its own value,
    or an NLL off by a sign, a scale or a term, would not sum to 1."""
    torch.manual_seed(5)
    model = PixelCNN(
        shape, variant=variant, features=12, layers=2, output_features=24, likelihood=likelihood
    )
    with torch.no_grad():
        model.head[-1].weight.mul_(20.0)
    d = math.prod(shape)
    levels = 2 if likelihood == "bernoulli" else 256
    codes = torch.arange(levels**d).view(-1, 1) // levels ** torch.arange(d) % levels
    x = codes.view(-1, *shape)
    x = x.float() if likelihood == "bernoulli" else x.to(torch.uint8)
    with torch.no_grad():
        nll = torch.cat([losses.nll(model(c), c, likelihood) for c in x.split(8192)])
    assert float(torch.logsumexp(-nll.double(), 0)) == pytest.approx(0.0, abs=1e-5)
    assert float(nll.max() - nll.min()) > 5.0  # far from uniform: the test has teeth


def test_probability_one_half_everywhere_is_exactly_one_bit_per_dim():
    x = (torch.rand(5, 1, 28, 28) > 0.5).float()
    nats = losses.nll(torch.zeros(5, 1, 28, 28), x, "bernoulli")
    torch.testing.assert_close(nats, torch.full((5,), 784 * math.log(2)))
    assert losses.bits_per_dim(float(nats.mean()), 784) == pytest.approx(1.0)


def _degenerate(likelihood, value):
    """A real PixelCNN whose every conditional puts (nearly) all mass on ``value`` (8-bit:
    one value per colour, R, G, B)."""
    shape = (1, 5, 4) if likelihood == "bernoulli" else (3, 3, 3)
    model = PixelCNN(shape, features=12, layers=1, output_features=12, likelihood=likelihood)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        last = model.head[-1]
        if likelihood == "bernoulli":
            last.bias.fill_(50.0 if value else -50.0)
        else:
            for colour, level in enumerate(value):
                last.bias.view(3, 256)[colour, level] = 50.0
    return model


@pytest.mark.parametrize(
    "likelihood,value", [("bernoulli", 1), ("bernoulli", 0), ("categorical", (77, 200, 3))]
)
def test_degenerate_model_samples_as_predicted(likelihood, value):
    """The sampler reads each colour's own 256 logits from the real model's output layout."""
    model = _degenerate(likelihood, value)
    out = sample(model, 4, generator=torch.Generator().manual_seed(0), progress=False)
    expected = torch.tensor(value if likelihood == "categorical" else [value]).view(1, -1, 1, 1)
    assert torch.equal(out, expected.to(out.dtype).expand_as(out))


def test_samples_follow_the_conditionals():
    """With p(x_i = 1) = sigmoid(b) everywhere, the sample mean matches it."""
    model = _degenerate("bernoulli", 1)
    with torch.no_grad():
        model.head[-1].bias.fill_(math.log(0.3 / 0.7))  # p = 0.3
    out = sample(model, 200, generator=torch.Generator().manual_seed(0), progress=False)
    assert abs(float(out.mean()) - 0.3) < 0.03


# --- Sampling with context: hand-built causal models -----------------------------------------
#
# Each model's conditionals are (with probability 1) a fixed function of earlier values, so the
# exact sampler's output is predictable from its few random draws. The rules reach back to the
# raster predecessor, to the pixel above and to the right (later than the pixel in column
# order), and within a pixel G depends on R and B on R and G: a sampler that draws every value
# from one forward pass, goes column by column, or draws the colours of a pixel out of order or
# all at once conditions on values not drawn yet (still zero) and breaks the rule.

SURE = 1e4  # a logit this large gives probability exactly 1 (0) in float32


def _previous_and_up_right(v):
    """For (N, H, W) values: each position's raster predecessor and the value above and to
    its right (zero where there is none), as the model sees them."""
    n, h, w = v.shape
    prev = torch.nn.functional.pad(v.reshape(n, h * w), (1, 0))[:, :-1].reshape(n, h, w)
    up_right = torch.nn.functional.pad(v, (0, 1, 1, 0))[:, :h, 1:]
    return prev, up_right


class _ParityModel(torch.nn.Module):
    """Binary (1, H, W): row 0 is fair coins; below it x = 1 - (prev XOR up_right), with prev
    the raster predecessor and up_right the pixel above and to the right (0 past the edge)."""

    likelihood = "bernoulli"

    def __init__(self, h=4, w=5):
        super().__init__()
        self.shape, self.dims = (1, h, w), h * w
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # for the sampler's device lookup

    def forward(self, x):
        prev, up_right = _previous_and_up_right(x[:, 0].long())
        target = 1 - (prev ^ up_right)
        logits = (2.0 * target - 1.0) * SURE
        logits[:, 0] = 0.0  # row 0: probability 1/2
        return logits.unsqueeze(1)

    @staticmethod
    def reference(x, start_row):
        """An independent, loop-by-loop application of the rule: every value from
        ``start_row`` on recomputed in raster order, row 0's coins kept."""
        out = x.clone().long()
        _, _, h, w = out.shape
        for img in out[:, 0]:
            for r in range(max(start_row, 1), h):
                for c in range(w):
                    prev = img[r, c - 1] if c > 0 else img[r - 1, w - 1]
                    up_right = img[r - 1, c + 1] if c + 1 < w else 0
                    img[r, c] = 1 - (int(prev) ^ int(up_right))
        return out.to(x.dtype)


class _ColourModel(torch.nn.Module):
    """8-bit RGB (3, H, W), all mod 256: R of row 0 is uniform over the 256 levels; below it
    R = B of the raster predecessor + G of the pixel above and to the right + 1; every
    pixel's G = R + 1 and B = R + G (so B = 2R + 1)."""

    likelihood = "categorical"

    def __init__(self, h=4, w=3):
        super().__init__()
        self.shape, self.dims = (3, h, w), 3 * h * w
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        x = x.long()
        red, green = x[:, 0], x[:, 1]
        blue_prev, _ = _previous_and_up_right(x[:, 2])
        _, green_up_right = _previous_and_up_right(green)
        targets = torch.stack(
            [(blue_prev + green_up_right + 1) % 256, (red + 1) % 256, (red + green) % 256], 1
        )
        hot = torch.nn.functional.one_hot(targets, 256).movedim(-1, 1)  # (N, 256, 3, H, W)
        logits = (hot.float() - 1.0) * SURE
        logits[:, :, 0, 0] = 0.0  # R of row 0: uniform
        return logits

    @staticmethod
    def reference(x, start_row):
        out = x.clone().long()
        _, _, h, w = out.shape
        for img in out:
            for r in range(start_row, h):
                for c in range(w):
                    if r > 0:
                        b_prev = img[2, r, c - 1] if c > 0 else img[2, r - 1, w - 1]
                        g_up_right = img[1, r - 1, c + 1] if c + 1 < w else 0
                        img[0, r, c] = (int(b_prev) + int(g_up_right) + 1) % 256
                    img[1, r, c] = (img[0, r, c] + 1) % 256
                    img[2, r, c] = (img[0, r, c] + img[1, r, c]) % 256
        return out.to(x.dtype)


def _random_images(model, n, seed):
    gen = torch.Generator().manual_seed(seed)
    if model.likelihood == "bernoulli":
        return torch.randint(0, 2, (n, *model.shape), generator=gen).float()
    return torch.randint(0, 256, (n, *model.shape), generator=gen).to(torch.uint8)


@pytest.mark.parametrize("model_class", [_ParityModel, _ColourModel])
def test_hand_built_models_are_causal_and_match_their_reference(model_class):
    """The test models themselves: the output at each value ignores that value and every later
    one (raster order, R -> G -> B), and the sure values are the reference rule's."""
    model = model_class()
    c, h, w = model.shape
    x, noise = _random_images(model, 8, seed=1), _random_images(model, 8, seed=2)
    out = model(x)
    for i in range(h * w * c):
        r, col, ch = i // (w * c), i // c % w, i % c
        later = torch.zeros(c * h * w, dtype=torch.bool)
        later[i:] = True  # flattened in (row, col, colour) order
        later = later.view(h, w, c).permute(2, 0, 1)
        changed = torch.where(later, noise, x)
        at = (slice(None),) * (1 if c == 1 else 2) + (ch, r, col)  # Bernoulli or 256-way
        assert torch.equal(model(changed)[at], out[at]), (ch, r, col)
    consistent = model.reference(x, start_row=0)
    assert torch.equal(model.reference(consistent, start_row=0), consistent)
    nll = losses.nll(model(consistent), consistent, model.likelihood)
    coins = w * math.log(2 if c == 1 else 256)  # only row 0's R (or bit) is random
    torch.testing.assert_close(nll, torch.full((8,), coins))


@pytest.mark.parametrize("model_class", [_ParityModel, _ColourModel])
def test_samples_obey_conditionals_that_depend_on_earlier_draws(model_class):
    model = model_class()
    n = 300
    # The hand-built models have no layers to cache: the reference sampler runs them.
    out = sample(model, n, generator=torch.Generator().manual_seed(0), progress=False,
                 sampler="naive")  # fmt: skip
    assert out.shape == (n, *model.shape) and out.dtype == _random_images(model, 1, 0).dtype
    # Every value that is sure given the earlier draws is that value, in every image.
    assert torch.equal(out, model.reference(out, start_row=0))
    # The free draws (row 0's bits or reds) follow their distribution, not one fixed value.
    free = out[:, 0, 0].double()
    if model.likelihood == "bernoulli":
        assert abs(float(free.mean()) - 0.5) < 0.05  # 1,500 fair coins: 4 standard errors
    else:  # 900 uniform levels: mean 127.5, standard error 2.5
        assert abs(float(free.mean()) - 127.5) < 10 and len(free.unique()) > 200


@pytest.mark.parametrize("model_class", [_ParityModel, _ColourModel])
def test_completion_keeps_the_top_half_and_conditions_the_rest_on_it(model_class):
    """``complete`` (``rlgen sample --complete-from``) is given whole images: the top half is
    kept as given (here it breaks the model's rule, so a resampled top half would show) and
    every later value is drawn given it; the given bottom half plays no part."""
    model = model_class()
    h = model.shape[1]
    x = _random_images(model, 50, seed=3)
    out = complete(model, x, generator=torch.Generator().manual_seed(0), progress=False,
                   sampler="naive")  # fmt: skip
    assert torch.equal(out[:, :, : h // 2], x[:, :, : h // 2])
    assert not torch.equal(model.reference(x, start_row=0)[:, :, : h // 2], x[:, :, : h // 2])
    assert torch.equal(out, model.reference(x, start_row=h // 2))
    assert not torch.equal(out[:, :, h // 2 :], x[:, :, h // 2 :])


@pytest.mark.parametrize("model_class", [_ParityModel, _ColourModel])
def test_evaluate_reports_the_exact_nll_and_its_bits_per_dim(model_class):
    """The job's test metrics on a model with a known likelihood: an image that obeys the rule
    costs ln 2 nats per free bit (ln 256 per free red level); each broken sure value costs
    SURE nats. 600 images, so the mean runs over the evaluation's chunks of 250; the 10 broken
    images are all in the last, short chunk. bits/dim = nats / (D ln 2) exactly."""
    model = model_class()
    c, h, w = model.shape
    x = model.reference(_random_images(model, 600, seed=4), start_row=0)
    last = x[-10:, -1, -1, -1].long()  # no later value depends on it
    x[-10:, -1, -1, -1] = ((last + 1) % (2 if c == 1 else 256)).to(x.dtype)
    metrics = PixelCNNJob().evaluate(model, x, PixelCNNConfig())
    free = w * math.log(2 if c == 1 else 256)
    assert metrics["test_nll_nats"] == pytest.approx(free + 10 * SURE / 600, rel=1e-6)
    assert metrics["test_bits_per_dim"] == metrics["test_nll_nats"] / (c * h * w * math.log(2))
