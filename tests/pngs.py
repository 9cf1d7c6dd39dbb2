"""Reading back the image grids the generative jobs write (``generative.grids.image_grid``):
PNG files and TensorBoard image summaries decoded to pixels, the grid cut into its tiles, and
checks on what a grid of images must look like whatever the model drew."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

PAD = 2  # pixels of grey border around and between tiles (image_grid's default)
BORDER = 128  # the border's grey: 0.5 of 255, rounded


def read_png(path: Path | str) -> np.ndarray:
    """A PNG file's pixels, (H, W, C) uint8."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", (path, image.format)
        return np.asarray(image).copy()


def tensorboard_images(logdir: Path | str, tag: str) -> dict[int, np.ndarray]:
    """Step -> the decoded pixels of every image summary ``tag`` TensorBoard shows for a run's
    ``tensorboard`` directory: every event file in it, in order, with each restart marker's
    purge applied (a retried attempt's file hides the steps it writes again). A step shown
    twice fails."""
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0})
    acc.Reload()
    out = {}
    for event in acc.Images(tag):
        assert event.step not in out, f"{tag}: step {event.step} shown twice in {logdir}"
        with Image.open(io.BytesIO(event.encoded_image_string)) as image:
            pixels = np.asarray(image).copy()
        assert pixels.shape[:2] == (event.height, event.width), (tag, event.step)
        out[event.step] = pixels
    return out


def grid_layout(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n`` tiles: ceil(sqrt(n)) columns unless given."""
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def grid_size(n: int, tile_hw: tuple[int, int], columns: int | None = None) -> tuple[int, int]:
    """(height, width) in pixels of a grid of ``n`` tiles of ``tile_hw`` pixels."""
    rows, cols = grid_layout(n, columns)
    h, w = tile_hw
    return rows * (h + PAD) + PAD, cols * (w + PAD) + PAD


def tiles(grid: np.ndarray, n: int, tile_hw: tuple[int, int] = (28, 28)) -> np.ndarray:
    """The ``n`` tiles of a grid, row by row: (n, h, w, C)."""
    _, cols = grid_layout(n)
    h, w = tile_hw
    return np.stack(
        [
            grid[PAD + r * (h + PAD) : PAD + r * (h + PAD) + h, PAD + c * (w + PAD) :][:, :w]
            for r, c in (divmod(i, cols) for i in range(n))
        ]
    )


def check_grid(
    grid: np.ndarray, n: int, tile_hw: tuple[int, int] = (28, 28), *, grey: bool = True
) -> np.ndarray:
    """Assert what any grid of ``n`` generated images shows, and return its tiles (one plane
    for grey images): the pixel size that ``n``, the tile size and the border give; a grey
    border everywhere outside the tiles (and in the cells of a last row left empty); grey
    images as three equal planes (colour ones not); no tile one flat colour; not every tile
    the same image."""
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3, grid.shape
    assert grid.shape[:2] == grid_size(n, tile_hw), (grid.shape, n, tile_hw)
    rows, cols = grid_layout(n)
    h, w = tile_hw
    border = np.ones(grid.shape[:2], dtype=bool)
    for i in range(n):
        r, c = divmod(i, cols)
        border[PAD + r * (h + PAD) : PAD + r * (h + PAD) + h, PAD + c * (w + PAD) :][:, :w] = False
    assert (grid[border] == BORDER).all(), "the border is not image_grid's grey"
    planes_equal = bool(
        (grid[..., 0] == grid[..., 1]).all() and (grid[..., 1] == grid[..., 2]).all()
    )
    assert planes_equal == grey, f"expected {'grey' if grey else 'colour'} images"
    cut = tiles(grid, n, tile_hw)
    flat = cut.reshape(n, -1)
    assert (flat.max(axis=1) > flat.min(axis=1)).all(), "a tile is one flat colour"
    assert n == 1 or (flat != flat[:1]).any(), "every tile is the same image"
    return cut[..., 0] if grey else cut


def as_pixels(x: Any) -> np.ndarray:
    """Images in [0, 1] (a torch tensor, N, 1, H, W) -> the uint8 (N, H, W) pixels a grid
    shows them as."""
    return (x[:, 0].float().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
