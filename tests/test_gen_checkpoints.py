"""Tier 2: generative checkpoints, from tiny runs on the session's Ray: which of a run's
checkpoints Ray Train keeps (the newest ``KEEP_CHECKPOINTS``, the last one registered), and
``rlgen sample --seed`` on a VAE and a PixelCNN: the same seed draws the same PNG, byte for byte
(in this process and in a fresh one), another seed other images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from generative.checkpoints import (
    KEEP_CHECKPOINTS,
    PATTERN,
    STATE_FILE,
    find_checkpoint,
    registered_checkpoint,
)
from tests.conftest import run_cli
from tests.test_vae_job import _small_dataset

VAE_EPOCHS = 3  # one checkpoint per epoch: more than KEEP_CHECKPOINTS
TINY = {
    "vae": {"hidden": 64, "latent_dim": 8, "iw_samples": 2, "grid_n": 4, "batch_size": 64},
    "pixelcnn": {"features": 8, "layers": 1, "output_features": 16, "grid_n": 4},
}


@pytest.fixture(scope="module")
def _store(tmp_path_factory):
    return {"data": _small_dataset(tmp_path_factory.mktemp("digits"), n_train=128, n_test=16)}


@pytest.fixture
def trained(_store, ray_local, tmp_path_factory):
    """``trained(model, epochs)``: (result, epochs reported) of ``rlgen.train(model, ...)`` on
    128 digits, run once per module and model."""
    import rlgen

    def go(model: str, epochs: int):
        if model not in _store:
            reports: list = []
            out = tmp_path_factory.mktemp(model) / "run"
            result = rlgen.train(
                model, dataset=str(_store["data"]), epochs=epochs, num_workers=1, seed=0,
                overrides=TINY[model], output=out, on_report=reports.append,
            )  # fmt: skip
            _store[model] = (result, [r.iteration for r in reports])
        return _store[model]

    return go


def _epoch(ckpt: Path) -> int:
    return int(torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")["epoch"])


def test_newest_checkpoints_are_kept(trained):
    """A checkpoint per epoch; exactly the last KEEP_CHECKPOINTS epochs' remain, the newest is
    the one Train registered last, the result's, and the one a run directory stands for."""
    result, epochs = trained("vae", VAE_EPOCHS)
    assert epochs == list(range(1, VAE_EPOCHS + 1))
    run_dir = Path(result.run_dir)
    kept = sorted(p for p in run_dir.glob(PATTERN) if p.is_dir())  # not Train's snapshot file
    assert [_epoch(p) for p in kept] == epochs[-KEEP_CHECKPOINTS:]
    assert registered_checkpoint(run_dir) == kept[-1]
    assert Path(result.checkpoint or "") == kept[-1]
    assert find_checkpoint(run_dir) == kept[-1]


def _tiles(path: Path, n: int, side: int = 28, pad: int = 2) -> np.ndarray:
    """The ``n`` (side, side) tiles of a PNG grid of one-channel images, in grid order
    (``generative.grids.image_grid``: ceil(sqrt(n)) columns, ``pad`` pixels of border)."""
    from PIL import Image

    with Image.open(path) as im:
        grid = np.asarray(im).copy()
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    assert grid.shape == (rows * (side + pad) + pad, cols * (side + pad) + pad, 3)
    tiles = []
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (side + pad), pad + c * (side + pad)
        tiles.append(grid[top : top + side, left : left + side, 0])
    return np.stack(tiles)


def _sample(rlgen_here, run_dir: Path, out: Path, seed: int, *extra: str) -> bytes:
    proc = rlgen_here(
        "sample", str(run_dir), "--n", "4", "--seed", str(seed), "--out", str(out), *extra
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


@pytest.mark.parametrize(("model", "epochs"), [("vae", VAE_EPOCHS), ("pixelcnn", 1)])
def test_sample_seed(trained, rlgen_here, tmp_path, model, epochs):
    result, _ = trained(model, epochs)
    run_dir = Path(result.run_dir)
    first = _sample(rlgen_here, run_dir, tmp_path / "a.png", 0)
    assert _sample(rlgen_here, run_dir, tmp_path / "b.png", 0) == first
    _sample(rlgen_here, run_dir, tmp_path / "c.png", 1)
    a, c = _tiles(tmp_path / "a.png", 4), _tiles(tmp_path / "c.png", 4)
    for i in range(4):  # each draw of the other seed is another image
        assert not np.array_equal(a[i], c[i]), i


def test_pixelcnn_completion_seed(trained, rlgen_here, tmp_path, _store):
    """``--complete-from`` with a seed: the same completions again; another seed keeps the
    originals and each completion's top half, and draws other bottom halves."""
    result, _ = trained("pixelcnn", 1)
    run_dir, data = Path(result.run_dir), str(_store["data"])
    first = _sample(rlgen_here, run_dir, tmp_path / "a.png", 5, "--complete-from", data)
    assert _sample(rlgen_here, run_dir, tmp_path / "b.png", 5, "--complete-from", data) == first
    _sample(rlgen_here, run_dir, tmp_path / "c.png", 6, "--complete-from", data)
    a, c = _tiles(tmp_path / "a.png", 8), _tiles(tmp_path / "c.png", 8)  # original, completion
    assert np.array_equal(a[0::2], c[0::2])
    assert np.array_equal(a[1::2, :14], c[1::2, :14])
    assert not np.array_equal(a[1::2, 14:], c[1::2, 14:])


def test_sample_seed_in_a_fresh_process(trained, rlgen_here, tmp_path):
    """``rlgen sample --seed`` as a user runs it draws what the same seed drew here."""
    result, _ = trained("pixelcnn", 1)
    run_dir = Path(result.run_dir)
    here = _sample(rlgen_here, run_dir, tmp_path / "here.png", 3)
    proc = run_cli(
        "sample", str(run_dir), "--n", "4", "--seed", "3", "--out", str(tmp_path / "cli.png"),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cli.png").read_bytes() == here
