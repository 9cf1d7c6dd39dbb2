"""Faults injected into real runs: non-finite values (a NaN loss, NaN rewards, weights
turned NaN; RL and generative) and checkpoints written to a full disk."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
from pathlib import Path

import pytest

from tests import fault_envs as fe
from tests.conftest import run_cli
from tests.faultkit import ENV, dqn_argv, rl_checkpoints, tensorboard_values

# --- non-finite values ---------------------------------------------------------------------


def test_a_nonfinite_step_does_not_move_the_weights_through_the_optimizer_state():
    """After a normal step Adam has moments; a NaN loss must leave every weight as it was (a
    zeroed gradient would still move them), and is counted."""
    import gymnasium as gym
    import torch
    from ray.rllib.core import DEFAULT_MODULE_ID

    from algorithms.common import metrics as M
    from algorithms.reinforce.algorithm import ReinforceConfig

    config = ReinforceConfig().environment("CartPole-v1").debugging(seed=0)
    learner = config.build_learner(env=gym.make("CartPole-v1"))
    params = list(learner.module[DEFAULT_MODULE_ID].parameters())

    def step(scale: float) -> None:
        loss = sum((p * p).sum() for p in params) * scale
        learner.apply_gradients(learner.compute_gradients({DEFAULT_MODULE_ID: loss}))

    step(1.0)
    before = [p.detach().clone() for p in params]
    step(math.nan)
    for a, b in zip(before, params, strict=True):
        torch.testing.assert_close(a, b.detach())
    assert learner.metrics.peek(M.NONFINITE_UPDATES) == 1
    step(1.0)  # a finite step moves them again
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, params, strict=True))


def test_nonfinite_updates_in_a_row_end_the_run_and_keep_the_last_checkpoint(tmp_path):
    """Every reward from the first game's 5th step on is NaN, so every update is skipped:
    after max_nonfinite_updates=3 in a row the run ends with exit 1 and one line naming the
    last good checkpoint (iteration 2's; nothing is saved after the 3rd); no result.json
    claims the run finished."""
    out = tmp_path / "run"
    faults = tmp_path / "faults"
    faults.mkdir()
    fe.arm(faults, "nanforever", 5)
    proc = run_cli(
        "train", "reinforce", "--env", ENV, "--seed", "0", "--max-env-steps", "20000",
        "--stop-reward", "1000", "--checkpoint-every", "1", "--video-frames", "0",
        "--set", "episodes_per_batch=2", "--set", "max_nonfinite_updates=3",
        "--output", str(out), env={fe.FAULT_DIR_ENV: str(faults)},
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr
    assert "3 non-finite updates in a row" in errors[0] and "Traceback" not in proc.stderr
    assert [n.split("-", 2)[2] for n in fe.claimed(faults)] == ["nanforever-5.0"]
    assert not (out / "result.json").exists()
    checkpoints = rl_checkpoints(out)
    assert f"the last good checkpoint is {checkpoints[-1]}" in errors[0]
    state = json.loads((checkpoints[-1] / "rlgen_state.json").read_text())["state"]
    assert state["iteration"] == 2  # iterations 1 and 2 saved; the 3rd skipped update ended it
    skipped = tensorboard_values(out / "tensorboard", "learner/nonfinite_updates_skipped")
    assert skipped == [1.0, 1.0, 1.0]  # one skipped update in each of the 3 iterations


def test_generative_nonfinite_steps_are_skipped_then_k_in_a_row_end_the_run(tmp_path):
    """The VAE with 2 Train workers: a NaN loss on rank 1 in epoch 1 is one skipped step
    (counted in TensorBoard) and the epoch completes; in epoch 2 rank 0's weights turn NaN, so
    every step is non-finite and max_nonfinite_steps=2 in a row end the run: exit 1, one line
    naming epoch 1's checkpoint, which still loads with finite weights."""
    import torch

    from generative.checkpoints import registered_checkpoint
    from generative.faults import FAULT_DIR_ENV
    from tests.test_vae_job import _small_dataset

    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    faults = tmp_path / "faults"
    faults.mkdir()
    for name in ("nanloss-rank1-epoch1-batch0", "nanweights-rank0-epoch2-batch0"):
        (faults / name).write_text("")
    out = tmp_path / "run"
    proc = run_cli(
        "train", "vae", "--dataset", str(data), "--epochs", "3", "--num-workers", "2",
        "--set", "grid_n=4", "--set", "batch_size=32", "--set", "max_nonfinite_steps=2",
        "--output", str(out), env={FAULT_DIR_ENV: str(faults)},
    )  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr
    last = registered_checkpoint(out)
    assert last is not None
    assert errors[0] == (
        "rlgen: error: vae: 2 non-finite steps in a row (NaN/inf loss or gradient; "
        "max_nonfinite_steps) in epoch 2; stopped without saving; the last good checkpoint is "
        f"{last}"
    )
    assert not (out / "result.json").exists()
    state = torch.load(last / "state.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(bool(torch.isfinite(t).all()) for t in state["model"].values())
    assert tensorboard_values(out / "tensorboard", "train/nonfinite_steps_skipped") == [1.0]


# --- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, megabytes: int):
    """A tmpfs of ``megabytes`` at ``path`` for the test. Mounting needs root with
    CAP_SYS_ADMIN (this machine and CI have it); elsewhere the test says why it cannot run."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_rl_checkpoint_on_a_full_disk_is_a_clear_error_and_keeps_the_last_one(tmp_path):
    """DQN storing its growing replay in every checkpoint, its run directory on a 6 MB tmpfs:
    the checkpoint that does not fit ends the run with exit 1 and one line naming the last
    whole checkpoint; the partial one is removed and the last one still evaluates."""
    with small_disk(tmp_path / "disk", 6) as disk:
        out = disk / "run"
        proc = run_cli(*dqn_argv(out, max_env_steps=40000, checkpoint_every=2))
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr
        last = rl_checkpoints(out)[-1]
        assert "cannot be written (" in errors[0] and "No space left on device" in errors[0]
        assert f"the last checkpoint, {last}, is intact" in errors[0]
        assert "Traceback" not in proc.stderr
        assert not list((out / "checkpoints").glob(".tmp_*"))
        evaluated = run_cli("eval", str(out), "--episodes", "1")
        assert evaluated.returncode == 0, evaluated.stderr
        assert json.loads(evaluated.stdout)["checkpoint"] == str(last)


def test_generative_checkpoint_on_a_full_disk_is_a_clear_error_and_keeps_the_last_one(tmp_path):
    """The VAE (a 16 MB checkpoint) with its run directory on a 24 MB tmpfs: epoch 2's
    checkpoint does not fit. Ray Train retries once (--max-failures 1), then the run ends with
    exit 1 and one line naming the disk error and epoch 1's checkpoint; the cut-short checkpoint
    is removed and epoch 1's still samples."""
    from tests.test_vae_job import _small_dataset

    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    with small_disk(tmp_path / "disk", 24) as disk:
        out = disk / "run"
        proc = run_cli(
            "train", "vae", "--dataset", str(data), "--epochs", "3", "--num-workers", "2",
            "--set", "grid_n=4", "--max-failures", "1", "--output", str(out),
        )  # fmt: skip
        errors = [line for line in proc.stderr.splitlines() if line.startswith("rlgen: error:")]
        assert "(failure 1 of 1 allowed, max_failures)" in proc.stderr, proc.stderr
        assert "no retries left (max_failures=1)" in proc.stderr, proc.stderr
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr
        assert "No space left on device" in errors[0] and "Traceback" not in proc.stderr
        [kept] = [p for p in (out / "ray_train" / "train").glob("checkpoint_*") if p.is_dir()]
        assert errors[0].endswith(
            f"the last good checkpoint is {kept}: fix the cause and continue with --resume"
        )
        sampled = run_cli("sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png"))
        assert sampled.returncode == 0, sampled.stderr
