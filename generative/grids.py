"""Image grids (N images in one picture) and PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from runkit.paths import create_new


def image_grid(images: torch.Tensor, *, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> one uint8 (rows*H, cols*W, 3) grid with a gray border."""
    x = images.detach().float().clamp(0, 1).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = torch.full((3, rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_png(grid_HWC: np.ndarray, path: Path) -> None:
    """Write through a temporary file and a rename: a reader never sees half a PNG. The
    temporary file is created new (never written through a symlink of its name)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    with create_new(tmp) as f:
        Image.fromarray(grid_HWC).save(f, format="PNG")
    tmp.replace(path)
