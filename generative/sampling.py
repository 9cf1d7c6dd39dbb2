"""``rlgen sample``: a grid of samples from a generative checkpoint, or test images next to
completions of their bottom halves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from generative.checkpoints import find_checkpoint, load_model
from generative.config import MAX_GRID, shown
from generative.grids import image_grid, save_png
from runkit.errors import UserError
from runkit.results import SampleResult


def check_grid_size(n: Any) -> None:
    """``--n``: an integer from 1 to MAX_GRID, or a UserError."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_GRID:
        raise UserError(f"--n {shown(n)}: must be an integer from 1 to {MAX_GRID}")


def sample_grid(
    checkpoint: str | Path,
    *,
    n: int = 64,
    out: str | Path = "samples.png",
    seed: int = 0,
    complete_from: str | None = None,
    sampler: str = "cached",
) -> SampleResult:
    """A grid of ``n`` samples written to ``out`` (a new .png), or with ``complete_from`` (a
    dataset) the first ``n`` test images each next to a completion of its bottom half.
    ``sampler`` (PixelCNN): ``cached`` layer activations, or ``naive``, one forward pass per
    value (the reference); the same seed draws the same images with either. ``n`` is at most
    MAX_GRID, checked before anything is read or allocated."""
    from generative.data.images import binarize, read_split, resolve, split_path
    from generative.pixelcnn.sampling import SAMPLERS

    target = Path(out)
    check_grid_size(n)
    if sampler not in SAMPLERS:
        raise UserError(f"--sampler {sampler}: one of {', '.join(SAMPLERS)}")
    if target.exists():
        raise UserError(f"--out {out}: already exists; choose a new file name")
    if target.suffix.lower() != ".png":
        raise UserError(f"--out {out}: must end in .png")
    job, cfg, model = load_model(checkpoint)
    if complete_from is None:
        images = job.sample(model, n, cfg, seed=seed, sampler=sampler)
    else:
        originals, _ = read_split(split_path(resolve(complete_from), "test"), limit=n)
        trained_on = tuple(getattr(model, "shape", ()))
        if tuple(originals.shape[1:]) != trained_on:
            raise UserError(
                f"--complete-from {complete_from}: images are {originals.shape[1:]}, the model "
                f"was trained on {trained_on}"
            )
        x = binarize(
            torch.as_tensor(originals[:n]), cfg.binarize, generator=torch.Generator().manual_seed(0)
        )
        images = job.complete(model, x, cfg, seed=seed, sampler=sampler)
    save_png(image_grid(images), target)
    return SampleResult(checkpoint=str(find_checkpoint(checkpoint)), n=n, out=str(target))
