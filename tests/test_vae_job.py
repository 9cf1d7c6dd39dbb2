"""Tier 2-3: the VAE as a Ray Train job, through the CLI: one epoch with 2 Train workers on CPU,
TensorBoard scalars and image grids, PNG files, a checkpoint that ``rlgen sample`` reads,
``--resume`` continuing from the last checkpoint, and learning on mnist5k."""

import json
import math
import os

import numpy as np
import pytest
import torch

from generative.data import images as gi
from tests.conftest import run_cli


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


def test_two_workers_checkpoint_sample_and_resume(tmp_path):
    data = _small_dataset(tmp_path / "digits")
    out = tmp_path / "run"
    first = run_cli(
        "train", "vae", "--dataset", str(data), "--epochs", "1", "--num-workers", "2",
        "--set", "iw_samples=5", "--set", "grid_n=16", "--output", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
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
    from generative.vae import losses

    _, cfg, model = load_model(out)
    x_test = _binarized_test_images(data, cfg)
    with torch.no_grad():
        kl = losses.gaussian_kl(*model.encode(x_test))
    assert m["test_kl_nats"] == pytest.approx(float(kl.mean()), rel=1e-5)
    assert cfg.iw_samples == 5
    estimates = []
    for seed in range(30):
        torch.manual_seed(seed)
        estimates.append(float(model.importance_weighted_nll(x_test, 5).mean()))
    spread = float(np.std(estimates, ddof=1))
    assert abs(m["test_nll_nats"] - float(np.mean(estimates))) < 6 * spread + 1e-4
    for name in ("samples", "reconstructions", "interpolation"):
        assert (out / "images" / f"{name}.png").stat().st_size > 100

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = list((out / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {"test/test_nll_nats", "test/test_bits_per_dim", "train/train_loss"} <= set(
        acc.Tags()["scalars"]
    )
    assert {"images/samples", "images/reconstructions", "images/interpolation"} <= set(
        acc.Tags()["images"]
    )

    grid = tmp_path / "grid.png"
    proc = run_cli("sample", str(out), "--n", "9", "--out", str(grid))
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    assert Image.open(grid).size == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 tiles of 28 + 2 border
    again = run_cli("sample", str(out), "--n", "9", "--out", str(grid))
    assert again.returncode == 2 and "already exists" in again.stderr

    assert json.loads((out / "run.json").read_text())["spec"]["max_failures"] == 2
    second = run_cli("train", "vae", "--resume", str(out), "--epochs", "2", "--max-failures", "3")
    assert second.returncode == 0, second.stderr
    assert json.loads((out / "run.json").read_text())["spec"]["max_failures"] == 3
    r2 = json.loads((out / "result.json").read_text())
    assert r2["epochs"] == 2  # continued from epoch 1, not restarted
    assert r2["wall_time_s"] > r1["wall_time_s"]
    assert r2["checkpoint"] != r1["checkpoint"]


def test_bad_vae_settings_exit_2(tmp_path):
    for args, needle in (
        (["--set", "latent_dim=0"], "latent_dim=0"),
        (["--set", "arch=rnn"], "arch='rnn'"),
        (["--set", "binarize=none", "--set", "likelihood=bernoulli"], "binary data"),
        (["--set", "latnt_dim=3"], "did you mean latent_dim"),
        (["--dataset", str(tmp_path / "nowhere")], "no such file"),
    ):
        proc = run_cli("train", "vae", *args, "--output", str(tmp_path / "r"), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], lines
        assert not (tmp_path / "r").exists()


def test_vae_learns_mnist5k(tmp_path):
    from generative.vae import expected

    out = tmp_path / "vae"
    proc = run_cli(
        "train", "vae", "--epochs", str(expected.MNIST5K_EPOCHS), "--seed", "0",
        "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"epoch {expected.MNIST5K_EPOCHS}/{expected.MNIST5K_EPOCHS}" in proc.stderr  # progress
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == expected.MNIST5K_EPOCHS
    assert result["test_nll_nats"] < expected.MNIST5K_MAX_TEST_NLL_NATS, result
    assert result["test_bits_per_dim"] == result["test_nll_nats"] / (784 * math.log(2))
    # The K = 50 bound is strictly tighter than the -ELBO, and only two checkpoints are kept.
    assert result["test_nll_nats"] < result["metrics"]["test_neg_elbo_nats"]
    kept = [p for p in (out / "ray_train" / "train").glob("checkpoint_*") if p.is_dir()]
    assert len(kept) == 2


def _record_poll_interval(path):
    """A Ray Train callback (it runs in the job's controller process) that writes the
    controller's health-check interval setting to ``path`` at each report."""
    from ray.train import UserCallback

    from generative.run_loop import TRAIN_POLL_ENV

    class Record(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            with open(path, "a") as f:
                f.write(f"{os.environ.get(TRAIN_POLL_ENV)}\n")

    return Record()


def test_train_controller_polls_at_rlgens_interval(tmp_path, ray_local, monkeypatch):
    """The job's Train controller polls the workers every TRAIN_POLL_INTERVAL_S (with Ray's
    2 s every short epoch waited for its commit), and the driver's environment is left as it
    was."""
    from generative.run_loop import TRAIN_POLL_ENV, TRAIN_POLL_INTERVAL_S, train

    monkeypatch.delenv(TRAIN_POLL_ENV, raising=False)
    data = _small_dataset(tmp_path / "digits", n_train=64, n_test=16)
    seen = tmp_path / "controller-env.txt"
    train(
        "vae", dataset=str(data), epochs=2, num_workers=1,
        overrides={"grid_n": 2, "iw_samples": 2}, output=tmp_path / "run",
        train_callbacks=[_record_poll_interval(str(seen))],
    )  # fmt: skip
    assert seen.read_text().splitlines() == [str(TRAIN_POLL_INTERVAL_S)] * 2
    assert TRAIN_POLL_ENV not in os.environ


def test_a_poll_interval_the_user_set_wins(monkeypatch):
    """What Ray Train hands on to a job's controller: rlgen's interval inside
    ``train_poll_interval``, the user's own value where one is set."""
    from ray.train.v2._internal.constants import get_env_vars_to_propagate

    from generative.run_loop import TRAIN_POLL_ENV, TRAIN_POLL_INTERVAL_S, train_poll_interval

    monkeypatch.delenv(TRAIN_POLL_ENV, raising=False)
    with train_poll_interval():
        assert get_env_vars_to_propagate()[TRAIN_POLL_ENV] == str(TRAIN_POLL_INTERVAL_S)
    assert TRAIN_POLL_ENV not in get_env_vars_to_propagate()
    monkeypatch.setenv(TRAIN_POLL_ENV, "1.5")
    with train_poll_interval():
        assert get_env_vars_to_propagate()[TRAIN_POLL_ENV] == "1.5"
    assert os.environ[TRAIN_POLL_ENV] == "1.5"
