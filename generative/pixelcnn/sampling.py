"""PixelCNN generation: raster-order sampling and image completion, one value at a time, each
drawn from the model's conditional p(x_i | x_<i) given everything drawn or given before it;
with cached layer activations (default) or a whole forward pass per value (the reference)."""

from __future__ import annotations

import copy
import sys
from typing import Any

import torch

from generative.pixelcnn.cached import cached_stack
from generative.pixelcnn.model import PixelCNN


def to_unit(model: PixelCNN, x: torch.Tensor) -> torch.Tensor:
    """Model-space values -> [0, 1] for image grids."""
    return x.float() if model.likelihood == "bernoulli" else x.float() / 255.0


def draw(logits: torch.Tensor, likelihood: str, generator: torch.Generator | None) -> torch.Tensor:
    """One value per image from the conditional at one position and channel."""
    if likelihood == "bernoulli":
        p = torch.sigmoid(logits).cpu()
        return torch.bernoulli(p, generator=generator).to(logits.device)
    probs = logits.softmax(dim=1).cpu()  # (B, 256)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)


SAMPLERS = ("cached", "naive")


def select(logits: torch.Tensor, likelihood: str, ch: int) -> torch.Tensor:
    """One colour's logits from a position's (B, C * per_dim) output vector."""
    if likelihood == "bernoulli":
        return logits[:, ch]
    return logits.view(logits.shape[0], -1, 256)[:, ch, :]


@torch.no_grad()
def fill(
    model: PixelCNN,
    x: torch.Tensor,
    *,
    start_row: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = True,
    sampler: str = "cached",
) -> torch.Tensor:
    """Sample every pixel from ``start_row`` on, in raster order and R -> G -> B within a pixel,
    each from p(x_i | x_<i) given everything drawn (or given) before it, the whole batch at once.

    ``sampler="cached"`` (``generative/pixelcnn/cached.py``) computes one position per layer for
    each value; ``"naive"``, the reference, one forward pass of the whole image per value. Both
    run a float64 copy of the model, so that for the same generator they draw the same images.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not one of {', '.join(SAMPLERS)}")
    net = copy.deepcopy(model).double().eval()
    c, h, w = model.shape
    x = x.clone()
    stack = cached_stack(net, net.inputs(x)) if sampler == "cached" else None
    total = (h - start_row) * w * c
    done = 0
    for r in range(h):
        for col in range(w):
            if r < start_row:
                if stack is not None:
                    stack.at(r, col)  # the given pixel: cache the layers there
                continue
            for ch in range(c):
                if stack is not None:
                    at = select(stack.at(r, col), model.likelihood, ch)
                else:
                    logits = net(x)
                    at = (
                        logits[:, ch, r, col]
                        if model.likelihood == "bernoulli"
                        else logits[:, :, ch, r, col]
                    )
                x[:, ch, r, col] = draw(at, model.likelihood, generator).to(x.dtype)
                if stack is not None:
                    stack.set_value(r, col, ch, net.inputs(x[:, ch, r, col]))
                done += 1
            if progress and (done % max(1, total // 20) < c or done == total):
                bar = "#" * (20 * done // total)
                print(f"\rsampling [{bar:<20}] {done}/{total}", end="", file=sys.stderr)
        if stack is not None:
            stack.row_done(r)
    if progress and total:
        print(file=sys.stderr)
    return x


def sample(model: PixelCNN, n: int, **kwargs: Any) -> torch.Tensor:
    """n images from scratch."""
    device = next(model.parameters()).device
    dtype = torch.float32 if model.likelihood == "bernoulli" else torch.uint8
    return fill(model, torch.zeros(n, *model.shape, dtype=dtype, device=device), **kwargs)


def complete(model: PixelCNN, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Keep the top half of each image, sample the bottom half."""
    return fill(model, x, start_row=model.shape[1] // 2, **kwargs)
