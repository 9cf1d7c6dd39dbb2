"""Tier 1: the PixelCNN's cached sampler computes, at every position, the logits the whole
forward pass gives there, and draws the same images as the reference sampler (plain and gated,
binary and 8-bit RGB, completion). The masks, likelihood and reference sampling are in
``test_pixelcnn_math.py``."""

import pytest
import torch

from generative.pixelcnn.cached import cached_stack
from generative.pixelcnn.model import PixelCNN
from generative.pixelcnn.sampling import complete, sample
from tests.test_pixelcnn_math import _random_images

# --- The cached sampler ----------------------------------------------------------------------

CACHE_CASES = [((1, 7, 6), "bernoulli"), ((3, 5, 4), "categorical")]


def _random_pixelcnn(variant, shape, likelihood, seed=0):
    """Small random weights, scaled so the conditionals are far from uniform and differ from
    position to position."""
    torch.manual_seed(seed)
    model = PixelCNN(shape, variant=variant, features=12, layers=3, output_features=16,
                     likelihood=likelihood)  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.mark.parametrize("variant", ["plain", "gated"])
@pytest.mark.parametrize("shape,likelihood", CACHE_CASES)
def test_cached_layers_give_the_forward_pass_logits_at_every_position(variant, shape, likelihood):
    """Walking a given image in raster order, each position's cached computation gives the
    logits of the whole-image forward pass there, every colour."""
    model = _random_pixelcnn(variant, shape, likelihood).double().eval()
    c, h, w = shape
    x = _random_images(model, 4, seed=5)
    with torch.no_grad():
        full = model(x)
        stack = cached_stack(model, model.inputs(x))
        for r in range(h):
            for col in range(w):
                at = stack.at(r, col)
                expected = full[:, :, r, col] if c == 1 else full[:, :, :, r, col].transpose(1, 2)
                torch.testing.assert_close(at, expected.reshape(4, -1), rtol=1e-10, atol=1e-10)
            stack.row_done(r)


@pytest.mark.parametrize("variant", ["plain", "gated"])
@pytest.mark.parametrize("shape,likelihood", CACHE_CASES)
def test_cached_sampler_draws_the_reference_samplers_images(variant, shape, likelihood):
    model = _random_pixelcnn(variant, shape, likelihood, seed=1)
    draws = {
        sampler: sample(
            model, 6, generator=torch.Generator().manual_seed(2), progress=False, sampler=sampler
        )  # fmt: skip
        for sampler in ("naive", "cached")
    }
    assert torch.equal(draws["naive"], draws["cached"])
    assert len(draws["cached"].unique()) > 1  # not a degenerate model
    given = _random_images(model, 6, seed=6)
    completions = {
        sampler: complete(
            model,
            given,
            generator=torch.Generator().manual_seed(3),
            progress=False,
            sampler=sampler,
        )  # fmt: skip
        for sampler in ("naive", "cached")
    }
    assert torch.equal(completions["naive"], completions["cached"])
    h = shape[1]
    assert torch.equal(completions["cached"][:, :, : h // 2], given[:, :, : h // 2])
