"""Tier 2-3: the PixelCNN on the shared Ray Train job code, through the CLI: one epoch with 2
workers, exact-likelihood metrics, sample and completion grids (TensorBoard and PNG, decoded:
layout, the given pixels kept, the same pixels in TensorBoard), ``rlgen sample`` with and
without ``--complete-from`` (the reference sampler drawing the same completions),
``--resume``; learning on mnist5k, and its exact test NLL below the VAE's bound on the same
test images (both runs trained in this session: ``tests.gen_runs``)."""

import json
import math

import numpy as np
import pytest
import torch

from generative.data import images as gi
from tests import pngs
from tests.conftest import run_cli
from tests.gen_runs import learning_run
from tests.test_vae_job import _binarized_test_images, _small_dataset

TINY = ["--set", "features=12", "--set", "layers=2", "--set", "output_features=24",
        "--set", "grid_n=4"]  # fmt: skip


def _check_completions(grid, n, originals):
    """A completion grid of ``n`` originals (binary (n, 1, 28, 28)): rows of the grid are
    original, completion, ...; each completion keeps its original's top half exactly and
    draws the bottom half (binary values, not all of them the original's)."""
    tiles = pngs.check_grid(grid, 2 * n)
    assert np.array_equal(tiles[0::2], pngs.as_pixels(originals))
    assert np.array_equal(tiles[1::2, :14], tiles[0::2, :14])
    assert set(np.unique(tiles[1::2])) <= {0, 255}
    assert not np.array_equal(tiles[1::2, 14:], tiles[0::2, 14:])


def _check_samples(grid, n):
    """``n`` binary draws (not probabilities), not all blank, not all the same."""
    tiles = pngs.check_grid(grid, n)
    assert set(np.unique(tiles)) == {0, 255}
    return tiles


def _assert_tensorboard_grids(out, written: dict) -> None:
    """The epoch's test NLL and grids in TensorBoard, each grid the PNG written, pixel for
    pixel."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = out / "tensorboard"  # every event file, as TensorBoard reads it
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {"images/samples", "images/completions"} <= set(acc.Tags()["images"])
    assert "test/test_nll_nats" in acc.Tags()["scalars"]
    for name in _GRIDS:
        shown = pngs.tensorboard_images(events, f"images/{name}")
        assert list(shown) == [1] and np.array_equal(shown[1], written[name]), name


def test_two_workers_sample_complete_and_resume(tmp_path):
    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    out = tmp_path / "run"
    first = run_cli(
        "train", "pixelcnn", "--dataset", str(data), "--epochs", "1", "--num-workers", "2",
        *TINY, "--set", "variant=gated", "--output", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    r1 = json.loads((out / "result.json").read_text())
    assert r1["model"] == "pixelcnn" and r1["epochs"] == 1 and r1["num_workers"] == 2
    assert r1["test_nll_nats"] == r1["metrics"]["test_nll_nats"]
    assert r1["test_bits_per_dim"] == r1["test_nll_nats"] / (784 * math.log(2))
    # The figure is the exact NLL of the checkpointed model on the whole test split, binarized
    # once with seed 0 as the training job does.
    from generative.checkpoints import load_model
    from generative.pixelcnn import losses

    _, cfg, model = load_model(out)
    x_test = _binarized_test_images(data, cfg)
    with torch.no_grad():
        nll = losses.nll(model(x_test), x_test, model.likelihood)
    assert r1["test_nll_nats"] == pytest.approx(float(nll.mean()), rel=1e-5)
    # The epoch's grids (grid_n = 4): 4 samples; the first 4 test images each followed by its
    # completion. Each PNG is the grid TensorBoard shows for the epoch, pixel for pixel.
    written = {name: pngs.read_png(out / "images" / f"{name}.png") for name in _GRIDS}
    assert written["samples"].shape == (2 * 30 + 2, 2 * 30 + 2, 3)
    _check_samples(written["samples"], 4)
    _check_completions(written["completions"], 4, x_test[:4])

    _assert_tensorboard_grids(out, written)

    grid, completions = tmp_path / "grid.png", tmp_path / "completions.png"
    proc = run_cli("sample", str(out), "--n", "4", "--out", str(grid))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "sample", str(out), "--n", "2", "--out", str(completions), "--complete-from", str(data)
    )
    assert proc.returncode == 0, proc.stderr
    assert pngs.read_png(grid).shape == (2 * 30 + 2, 2 * 30 + 2, 3)
    assert pngs.read_png(completions).shape == (2 * 30 + 2, 2 * 30 + 2, 3)  # 2 + 2 completions
    _check_samples(pngs.read_png(grid), 4)
    # Rows of the grid: original, its completion. The originals are the first test images
    # (binarized with seed 0); each completion keeps its original's top half and draws the rest.
    _check_completions(pngs.read_png(completions), 2, _binarized_test_images(data, cfg, n=2))
    # The reference sampler (a forward pass per value) draws the same completions: through the
    # Python API, in this process (the same call as ``rlgen sample --sampler naive``).
    from generative.sampling import sample_grid

    reference = tmp_path / "completions-naive.png"
    sample_grid(out, n=2, out=reference, complete_from=str(data), sampler="naive")
    assert np.array_equal(pngs.read_png(reference), pngs.read_png(completions))

    second = run_cli("train", "pixelcnn", "--resume", str(out), "--epochs", "2")
    assert second.returncode == 0, second.stderr
    assert json.loads((out / "result.json").read_text())["epochs"] == 2


_GRIDS = ("samples", "completions")


@pytest.mark.learning  # reads (or trains) a learning run
def test_pixelcnn_learns_mnist5k(ray_local, tmp_path_factory):
    """Below the expected exact test NLL after MNIST5K_EPOCHS; the last epoch's grids: 16
    binary samples, the first 16 test images each followed by its completion (the top half
    kept), the same pixels as TensorBoard's at that epoch."""
    from generative.checkpoints import load_model
    from generative.pixelcnn import expected

    run = learning_run("pixelcnn", tmp_path_factory)
    result = run.result
    assert f"epoch {expected.MNIST5K_EPOCHS}/{expected.MNIST5K_EPOCHS}" in run.stderr  # progress
    assert result["epochs"] == expected.MNIST5K_EPOCHS
    assert result["test_nll_nats"] < expected.MNIST5K_MAX_TEST_NLL_NATS, result
    assert result["test_bits_per_dim"] == result["test_nll_nats"] / (784 * math.log(2))

    _, cfg, _ = load_model(run.out)
    written = {name: pngs.read_png(run.out / "images" / f"{name}.png") for name in _GRIDS}
    _check_samples(written["samples"], 16)
    _check_completions(written["completions"], 16, _binarized_test_images(gi.mnist5k(), cfg, n=16))
    events = run.out / "tensorboard"  # every event file, as TensorBoard reads it
    for name in _GRIDS:
        shown = pngs.tensorboard_images(events, f"images/{name}")
        assert sorted(shown) == list(range(1, expected.MNIST5K_EPOCHS + 1))
        assert np.array_equal(shown[expected.MNIST5K_EPOCHS], written[name]), name


@pytest.mark.learning  # reads (or trains) a learning run
def test_pixelcnn_exact_nll_is_below_the_vaes_bound_on_the_same_images(ray_local, tmp_path_factory):
    """The lecture's claim, on figures measured here: both models trained on mnist5k in this
    session (the learning runs, each its job's ``expected.MNIST5K_EPOCHS``), both scored on
    the same 1,000 binarized test images. The PixelCNN's figure is its exact NLL; the VAE's an
    upper bound on its NLL (the K-sample importance-weighted bound, and the looser -ELBO)."""
    from generative.checkpoints import load_model
    from generative.vae import losses as vae_losses

    pixelcnn, vae = (
        learning_run("pixelcnn", tmp_path_factory),
        learning_run("vae", tmp_path_factory),
    )
    _, pcfg, pmodel = load_model(pixelcnn.out)
    _, vcfg, vmodel = load_model(vae.out)
    assert pcfg.binarize == vcfg.binarize
    x_test = _binarized_test_images(gi.mnist5k(), pcfg)
    assert len(x_test) == 1000
    from generative.pixelcnn.train import PixelCNNJob

    exact = PixelCNNJob().evaluate(pmodel, x_test, pcfg)
    # The reported figure is that NLL: each run scored these images.
    assert pixelcnn.result["test_nll_nats"] == pytest.approx(exact["test_nll_nats"], rel=1e-5)
    with torch.no_grad():
        kl = float(vae_losses.gaussian_kl(*vmodel.encode(x_test)).mean())
    assert vae.result["metrics"]["test_kl_nats"] == pytest.approx(kl, rel=1e-5)
    seed = 0
    print(f"VAE bound drawn with torch seed {seed}")
    torch.manual_seed(seed)
    bound = float(vmodel.importance_weighted_nll(x_test, vcfg.iw_samples).mean())
    print(f"PixelCNN exact NLL {exact['test_nll_nats']:.2f} nats; VAE bound {bound:.2f} here, "
          f"{vae.result['test_nll_nats']:.2f} reported")  # fmt: skip
    assert exact["test_nll_nats"] < bound
    assert exact["test_nll_nats"] < vae.result["test_nll_nats"]
    assert exact["test_nll_nats"] < vae.result["metrics"]["test_neg_elbo_nats"]
    assert pixelcnn.result["test_bits_per_dim"] < vae.result["test_bits_per_dim"]
