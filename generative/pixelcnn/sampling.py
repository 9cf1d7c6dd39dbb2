"""PixelCNN generation: raster-order sampling and image completion, one value at a time, each
drawn from the model's conditional p(x_i | x_<i) given everything drawn or given before it."""

from __future__ import annotations

import sys
from typing import Any

import torch

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


@torch.no_grad()
def fill(
    model: PixelCNN,
    x: torch.Tensor,
    *,
    start_row: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Sample every pixel from ``start_row`` on, in raster order and R -> G -> B within a pixel,
    each from p(x_i | x_<i) given everything drawn (or given) before it. One forward pass per
    value, the whole batch at once."""
    model.eval()
    c, h, w = model.shape
    x = x.clone()
    total = (h - start_row) * w * c
    done = 0
    for r in range(start_row, h):
        for col in range(w):
            for ch in range(c):
                logits = model(x)
                at = (
                    logits[:, ch, r, col]
                    if model.likelihood == "bernoulli"
                    else logits[:, :, ch, r, col]
                )
                x[:, ch, r, col] = draw(at, model.likelihood, generator).to(x.dtype)
                done += 1
            if progress and (done % max(1, total // 20) < c or done == total):
                bar = "#" * (20 * done // total)
                print(f"\rsampling [{bar:<20}] {done}/{total}", end="", file=sys.stderr)
    if progress:
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
