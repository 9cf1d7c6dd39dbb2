"""Tier 2-3: the VAE as a Ray Train job, through the CLI: one epoch with 2 Train workers on CPU,
TensorBoard scalars and image grids, PNG files (decoded: layout, the test images shown, the
same pixels in TensorBoard), a checkpoint that ``rlgen sample`` reads, ``--resume`` continuing
from the last checkpoint; learning on mnist5k (one run, ``tests.gen_runs``, read by the learning
test, the grid checks, the controller's poll interval and the PixelCNN comparison)."""

import json
import math
import os

import numpy as np
import pytest
import torch

from generative.data import images as gi
from tests import pngs
from tests.conftest import run_cli
from tests.gen_runs import learning_run


def _small_dataset(root, n_train=256, n_test=64):
    """Real digits: the first images of mnist5k, so the job sees real data quickly."""
    full = gi.mnist5k()
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = gi.read_split(gi.split_path(full, split))
        gi.write_images(root / f"{split}.parquet", images[:n].transpose(0, 2, 3, 1), labels[:n])
    return root


def _binarized_test_images(data, cfg, n=None):
    """The first ``n`` test images of ``data`` as the training job gives them to a model: binarized
    once, with a generator seeded 0 (evaluation: all of them; ``--complete-from``: n)."""
    images, _ = gi.read_split(gi.split_path(str(data), "test"))
    gen = torch.Generator().manual_seed(0)
    return gi.binarize(torch.as_tensor(images[:n]), cfg.binarize, generator=gen)


_VAE_GRIDS = ("samples", "reconstructions", "interpolation")


def _seeded(seed):
    print(f"torch generator seed {seed}")
    return torch.Generator().manual_seed(seed)


def test_grid_pngs_keep_every_tile_and_colour_plane(tmp_path):
    """What the grid checks read back is what ``image_grid`` and ``save_png`` were given: tile
    i at row i // columns, column i % columns; colour images with R, G, B in that order, grey
    ones as three equal planes; a grey border, also in the empty cells of the last row."""
    from generative.grids import image_grid, save_png

    seed = 0
    print(f"numpy seed {seed}")
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (5, 3, 6, 4), dtype=np.uint8)  # N, C, H, W
    save_png(image_grid(torch.as_tensor(colour) / 255.0), tmp_path / "colour.png")
    grid = pngs.read_png(tmp_path / "colour.png")
    assert grid.shape == (2 * 8 + 2, 3 * 6 + 2, 3)  # 3 columns of 4 + 2, 2 rows of 6 + 2
    tiles = pngs.check_grid(grid, 5, (6, 4), grey=False)
    assert np.array_equal(tiles, colour.transpose(0, 2, 3, 1))
    grey = rng.integers(0, 256, (3, 1, 5, 5), dtype=np.uint8)
    save_png(image_grid(torch.as_tensor(grey) / 255.0), tmp_path / "grey.png")
    tiles = pngs.check_grid(pngs.read_png(tmp_path / "grey.png"), 3, (5, 5))
    assert np.array_equal(tiles, grey[:, 0])


def _assert_recomputed_metrics(m: dict, model, x_test) -> None:
    """The KL term exactly; the K = 5 importance-weighted NLL within Monte Carlo error of 30
    fresh estimates."""
    from generative.vae import losses

    with torch.no_grad():
        kl = losses.gaussian_kl(*model.encode(x_test))
    assert m["test_kl_nats"] == pytest.approx(float(kl.mean()), rel=1e-5)
    estimates = []
    for seed in range(30):
        torch.manual_seed(seed)
        estimates.append(float(model.importance_weighted_nll(x_test, 5).mean()))
    spread = float(np.std(estimates, ddof=1))
    assert abs(m["test_nll_nats"] - float(np.mean(estimates))) < 6 * spread + 1e-4


def _assert_tensorboard_grids(out, written: dict) -> None:
    """The epoch's figures and grids in TensorBoard, each grid the PNG written, pixel for
    pixel."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = out / "tensorboard"  # every event file, as TensorBoard reads it
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {"test/test_nll_nats", "test/test_bits_per_dim", "train/train_loss"} <= set(
        acc.Tags()["scalars"]
    )
    assert {"images/samples", "images/reconstructions", "images/interpolation"} <= set(
        acc.Tags()["images"]
    )
    for name in _VAE_GRIDS:
        shown = pngs.tensorboard_images(events, f"images/{name}")
        assert list(shown) == [1] and np.array_equal(shown[1], written[name]), name


def test_two_workers_checkpoint_sample_and_resume(tmp_path, rlgen_here):
    data = _small_dataset(tmp_path / "digits")
    out = tmp_path / "run"
    first = run_cli(
        "train", "vae", "--dataset", str(data), "--epochs", "1", "--num-workers", "2",
        "--set", "iw_samples=5", "--set", "grid_n=16", "--output", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "[vae] epoch 1/1" in first.stderr  # progress
    r1 = json.loads((out / "result.json").read_text())
    assert r1["model"] == "vae" and r1["epochs"] == 1 and r1["num_workers"] == 2
    assert r1["use_gpu"] is False
    m = r1["metrics"]
    # -ELBO = reconstruction + KL exactly; every bits/dim figure is nats / (784 ln 2).
    assert m["test_neg_elbo_nats"] == m["test_recon_nats"] + m["test_kl_nats"]
    assert m["test_neg_elbo_bits_per_dim"] == m["test_neg_elbo_nats"] / (784 * math.log(2))
    assert r1["test_nll_nats"] == m["test_nll_nats"]
    assert r1["test_bits_per_dim"] == m["test_nll_nats"] / (784 * math.log(2))
    # Recomputed from the checkpoint on the test split (binarized once with seed 0, as the
    # training job does): the KL term exactly; the K = 5 importance-weighted NLL, a random
    # estimate, within Monte Carlo error of 30 fresh estimates.
    from generative.checkpoints import load_model

    _, cfg, model = load_model(out)
    x_test = _binarized_test_images(data, cfg)
    _assert_recomputed_metrics(m, model, x_test)
    assert cfg.iw_samples == 5
    # The epoch's grids: grid_n = 16 prior samples (4 x 4); the first 8 test images each
    # followed by its reconstruction; 8 rows of 8 along a latent line between test images.
    # Each PNG is the grid TensorBoard shows for the epoch, pixel for pixel.
    written = {name: pngs.read_png(out / "images" / f"{name}.png") for name in _VAE_GRIDS}
    samples = pngs.check_grid(written["samples"], 16)
    assert len(np.unique(samples)) > 2  # decoder means, not binary draws
    pairs = pngs.check_grid(written["reconstructions"], 16)
    assert np.array_equal(pairs[0::2], pngs.as_pixels(x_test[:8]))
    pngs.check_grid(written["interpolation"], 64)

    _assert_tensorboard_grids(out, written)

    grid = tmp_path / "grid.png"
    proc = run_cli("sample", str(out), "--n", "9", "--out", str(grid))
    assert proc.returncode == 0, proc.stderr
    drawn = pngs.check_grid(pngs.read_png(grid), 9)  # 3x3 tiles of 28 + 2 border
    assert pngs.read_png(grid).shape == (3 * 30 + 2, 3 * 30 + 2, 3)
    # The checkpoint's decoder means for prior draws seeded 0 (the default --seed), computed
    # here (within one level: another process's float rounding).
    means = pngs.as_pixels(model.sample(9, generator=_seeded(0)))
    assert np.abs(drawn.astype(int) - means).max() <= 1
    again = rlgen_here("sample", str(out), "--n", "9", "--out", str(grid))
    assert again.returncode == 2 and "already exists" in again.stderr

    assert json.loads((out / "run.json").read_text())["spec"]["max_failures"] == 2
    second = run_cli("train", "vae", "--resume", str(out), "--epochs", "2", "--max-failures", "3")
    assert second.returncode == 0, second.stderr
    assert "epoch 2/2" in second.stderr  # progress
    assert json.loads((out / "run.json").read_text())["spec"]["max_failures"] == 3
    r2 = json.loads((out / "result.json").read_text())
    assert r2["epochs"] == 2  # continued from epoch 1, not restarted
    assert r2["wall_time_s"] > r1["wall_time_s"]
    assert r2["checkpoint"] != r1["checkpoint"]


def test_bad_vae_settings_exit_2(tmp_path, rlgen_here):
    """The first row in a fresh interpreter, as a user runs it; the rest through
    ``rlgen_cli.main`` in this process (the same checks, before anything starts)."""
    for i, (args, needle) in enumerate((
        (["--set", "latent_dim=0"], "latent_dim=0"),
        (["--set", "arch=rnn"], "arch='rnn'"),
        (["--set", "binarize=none", "--set", "likelihood=bernoulli"], "binary data"),
        (["--set", "latnt_dim=3"], "did you mean latent_dim"),
        (["--dataset", str(tmp_path / "nowhere")], "no such file"),
    )):  # fmt: skip
        rlgen = run_cli if i == 0 else rlgen_here
        proc = rlgen("train", "vae", *args, "--output", str(tmp_path / "r"), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], lines
        assert not (tmp_path / "r").exists()


@pytest.mark.learning  # reads (or trains) a learning run
def test_vae_learns_mnist5k(ray_local, tmp_path_factory):
    from generative.vae import expected

    run = learning_run("vae", tmp_path_factory)
    assert f"epoch {expected.MNIST5K_EPOCHS}/{expected.MNIST5K_EPOCHS}" in run.stderr  # progress
    result = run.result
    assert result["epochs"] == expected.MNIST5K_EPOCHS
    assert result["test_nll_nats"] < expected.MNIST5K_MAX_TEST_NLL_NATS, result
    assert result["test_bits_per_dim"] == result["test_nll_nats"] / (784 * math.log(2))
    # The K = 50 bound is strictly tighter than the -ELBO, and only two checkpoints are kept.
    assert result["test_nll_nats"] < result["metrics"]["test_neg_elbo_nats"]
    kept = [p for p in (run.out / "ray_train" / "train").glob("checkpoint_*") if p.is_dir()]
    assert len(kept) == 2


@pytest.mark.learning  # reads (or trains) a learning run
def test_learned_vae_grids_show_its_reconstructions_and_interpolations(ray_local, tmp_path_factory):
    """The grids of the mnist5k run's last epoch (grid_n = 64): 64 prior samples; the first 32
    test images each followed by its reconstruction, closer to it than to the other test images;
    8 rows of 8 from the decoding of test image r to that of test image r + 8. The PNGs are
    what TensorBoard shows at that epoch."""
    from generative.vae import expected

    run = learning_run("vae", tmp_path_factory)
    written = {name: pngs.read_png(run.out / "images" / f"{name}.png") for name in _VAE_GRIDS}
    samples = pngs.check_grid(written["samples"], 64)
    assert len(np.unique(samples)) > 2  # decoder means, not binary draws
    pairs = pngs.check_grid(written["reconstructions"], 64)
    from generative.checkpoints import load_model

    _, cfg, _ = load_model(run.out)
    x_test = _binarized_test_images(gi.mnist5k(), cfg, n=32)
    originals, recons = pairs[0::2], pairs[1::2].astype(float)
    assert np.array_equal(originals, pngs.as_pixels(x_test))
    # Each reconstruction is closer (mean absolute pixel difference) to its own original than
    # to most of the 31 others: to at least 3 in 4 of them, and over all 32 x 31 pairs to 95%
    # (a reconstruction shown next to another image, or a shuffled grid: about half).
    distance = np.abs(recons[:, None] - originals[None].astype(float)).mean(axis=(2, 3))
    own = np.diag(distance)[:, None]
    beaten = ((own < distance) & ~np.eye(32, dtype=bool)).sum(axis=1) / 31
    print(f"share of other originals farther than its own, per reconstruction: {beaten}")
    assert beaten.min() >= 0.75 and beaten.mean() >= 0.95, beaten
    path = pngs.check_grid(written["interpolation"], 64).reshape(8, 8, 28, 28).astype(int)
    # Each row starts at the decoding of test image r's mean code and ends at test image
    # r + 8's: the reconstructions above (computed in another batch: within one level).
    assert np.abs(path[:, 0] - recons[:8]).max() <= 1
    assert np.abs(path[:, -1] - recons[8:16]).max() <= 1
    assert all(len({row[k].tobytes() for k in range(8)}) > 2 for row in path)  # it moves
    events = run.out / "tensorboard"  # every event file, as TensorBoard reads it
    for name in _VAE_GRIDS:
        shown = pngs.tensorboard_images(events, f"images/{name}")
        assert sorted(shown) == list(range(1, expected.MNIST5K_EPOCHS + 1))
        assert np.array_equal(shown[expected.MNIST5K_EPOCHS], written[name]), name


@pytest.mark.learning  # reads (or trains) a learning run
def test_train_controller_polls_at_rlgens_interval(ray_local, tmp_path_factory):
    """The job's Train controller polls the workers every TRAIN_POLL_INTERVAL_S (with Ray's
    2 s every short epoch waited for its commit), and the driver's environment is left as it
    was: recorded at every report of the VAE's mnist5k run (started without the variable)."""
    from generative.run_loop import TRAIN_POLL_INTERVAL_S
    from generative.vae import expected

    run = learning_run("vae", tmp_path_factory)
    assert run.poll_intervals == [str(TRAIN_POLL_INTERVAL_S)] * expected.MNIST5K_EPOCHS
    assert run.driver_kept_env


def test_train_settings_handed_to_the_controller_and_the_users_own_win(monkeypatch):
    """What Ray Train hands on to a job's controller: rlgen's poll interval inside
    ``train_settings`` and, on one node only, no preemption watcher; the user's own value of
    either where one is set; nothing left behind."""
    from ray.train.v2._internal.constants import get_env_vars_to_propagate

    from generative.run_loop import (
        PREEMPTION_ENV,
        TRAIN_POLL_ENV,
        TRAIN_POLL_INTERVAL_S,
        train_settings,
    )

    monkeypatch.delenv(TRAIN_POLL_ENV, raising=False)
    monkeypatch.delenv(PREEMPTION_ENV, raising=False)
    with train_settings(one_node=True):
        handed = get_env_vars_to_propagate()
        assert handed[TRAIN_POLL_ENV] == str(TRAIN_POLL_INTERVAL_S)
        assert handed[PREEMPTION_ENV] == "0"
    with train_settings(one_node=False):
        assert PREEMPTION_ENV not in get_env_vars_to_propagate()  # a cluster keeps its watcher
    assert TRAIN_POLL_ENV not in get_env_vars_to_propagate()
    assert PREEMPTION_ENV not in get_env_vars_to_propagate()
    monkeypatch.setenv(TRAIN_POLL_ENV, "1.5")
    monkeypatch.setenv(PREEMPTION_ENV, "1")
    with train_settings(one_node=True):
        assert get_env_vars_to_propagate()[TRAIN_POLL_ENV] == "1.5"
        assert get_env_vars_to_propagate()[PREEMPTION_ENV] == "1"
    assert os.environ[TRAIN_POLL_ENV] == "1.5"
    assert os.environ[PREEMPTION_ENV] == "1"
