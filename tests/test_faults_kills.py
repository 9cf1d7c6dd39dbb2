"""Faults injected into real runs: processes killed. Ray Train workers that raise or are
killed mid-epoch (the job goes on from the last checkpoint, epochs are never counted twice,
TensorBoard shows each epoch once); the driver of an RL or a generative run SIGKILLed at a
random moment, or while a checkpoint is being written, then resumed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.faultkit import (
    dqn_argv,
    kill_driver,
    rl_checkpoints,
    start,
    tensorboard_steps,
    tensorboard_values,
    tree,
    wait_for,
    wait_until,
)

TINY_PIXELCNN = {"features": 12, "layers": 2, "output_features": 24}


@pytest.fixture
def kill_seed() -> int:
    """The seed of a kill's random moment: ``RLGEN_FAULT_SEED`` when set (to replay a failure),
    else one from the OS; printed, and named in the test's assertion messages."""
    seed = int(os.environ.get("RLGEN_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill moment seed: {seed} (RLGEN_FAULT_SEED={seed} replays it)")
    return seed


def test_train_worker_failures_resume_from_the_last_checkpoint(tmp_path):
    """The VAE and the PixelCNN, side by side (two runs at once): 2 Train workers, 3 epochs.
    In the VAE's run the worker of rank 1 raises at its second batch of epoch 2; in the
    PixelCNN's the worker of rank 0 raises once epoch 1 is logged to TensorBoard, before its
    checkpoint is reported (the retry starts from scratch). Then, in both retried jobs, the
    worker of rank 0 is SIGKILLed at its second batch of epoch 3. Each failure restarts the
    workers from the last checkpoint (or the start): every epoch is reported once, in order,
    TensorBoard shows each epoch once, and the job ends with epoch 3."""
    from concurrent.futures import ThreadPoolExecutor

    from generative.faults import FAULT_DIR_ENV
    from tests.test_vae_job import _small_dataset

    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    armed = {
        "vae": ("raise-rank1-epoch2-batch1", "kill-rank0-epoch3-batch1"),
        "pixelcnn": ("raise-rank0-epoch1-report", "kill-rank0-epoch3-batch1"),
    }
    models = tuple(armed)
    for model in models:
        faults = tmp_path / model / "faults"
        faults.mkdir(parents=True)
        for name in armed[model]:
            (faults / name).write_text("")

    def run(model: str) -> subprocess.CompletedProcess:
        settings = {"grid_n": 4, "batch_size": 32, **(TINY_PIXELCNN if model == "pixelcnn" else {})}
        return run_cli(
            "train", model, "--dataset", str(data), "--epochs", "3", "--num-workers", "2",
            *(a for k, v in settings.items() for a in ("--set", f"{k}={v}")),
            "--output", str(tmp_path / model / "run"),
            env={FAULT_DIR_ENV: str(tmp_path / model / "faults")},
        )  # fmt: skip

    with ThreadPoolExecutor(len(models)) as pool:
        procs = dict(zip(models, pool.map(run, models), strict=True))
    for model, proc in procs.items():
        faults, out = tmp_path / model / "faults", tmp_path / model / "run"
        assert proc.returncode == 0, (model, proc.stderr)
        assert sorted(p.name for p in faults.iterdir()) == sorted(
            f"claimed-{name}" for name in armed[model]
        ), model
        # Ray Train saw the failure and retried.
        assert "injected worker failure" in proc.stderr, (model, proc.stderr)
        result = json.loads((out / "result.json").read_text())
        assert result["epochs"] == 3, model
        # No epoch was reported twice.
        progress = (out / "progress.log").read_text().splitlines()
        assert [line.split(" | ")[0] for line in progress] == [
            f"[{model}] epoch {e}/3" for e in (1, 2, 3)
        ]
        assert [proc.stderr.count(f"epoch {e}/3 |") for e in (1, 2, 3)] == [1, 1, 1], model
        assert tensorboard_steps(out / "tensorboard", "train/train_loss") == [1, 2, 3], model
    # The PixelCNN's first attempt had logged epoch 1 before it failed: the retry hid it.
    first = sorted((tmp_path / "pixelcnn/run/tensorboard").glob("events.out.tfevents.*"))[0]
    assert tensorboard_steps(first, "train/train_loss") == [1]


def test_driver_killed_at_a_random_moment_resumes_with_replay_and_tensorboard(tmp_path, kill_seed):
    """DQN with its replay stored in checkpoints; the driver is SIGKILLed at a random moment
    after its first checkpoint, then the same command runs again with --resume. It continues
    from the last checkpoint: iterations and env steps go on from there, the replay memory
    comes back (it is larger than what the resumed run has sampled), and TensorBoard shows
    every iteration once (the killed run's steps after the checkpoint are hidden)."""
    out = tmp_path / "run"
    argv = dqn_argv(out, max_env_steps=5000, checkpoint_every=3)
    proc = start(argv)
    try:
        wait_for(lambda: bool(rl_checkpoints(out)), proc)
        first_ckpt = json.loads((rl_checkpoints(out)[0] / "rlgen_state.json").read_text())
        # Let it write TensorBoard steps past that checkpoint (those a resume must not repeat),
        # then kill it at a random moment, printed for the record.
        wait_for(
            lambda: (
                max(tensorboard_steps(out / "tensorboard", "perf/env_steps_per_s"))
                > first_ckpt["state"]["env_steps"]
            ),
            proc,
        )
        delay = random.Random(kill_seed).uniform(0.0, 3.0)
        moment = f"{delay:.2f} s after a step past its first checkpoint (seed {kill_seed})"
        print(f"killing the driver {moment}")
        wait_until(time.monotonic() + delay, proc, what=f"(the kill was {moment})")
    finally:
        kill_driver(proc)
    last = rl_checkpoints(out)[-1]
    at_kill = json.loads((last / "rlgen_state.json").read_text())["state"]
    assert not (out / "result.json").exists(), moment

    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, f"killed {moment}: {resumed.stderr}"
    assert f"resuming from {last} (iteration {at_kill['iteration']}," in resumed.stderr, moment
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"] == "max_env_steps" and result["env_steps"] >= 5000, moment
    final = json.loads((Path(result["checkpoint"]) / "rlgen_state.json").read_text())["state"]
    assert final["iteration"] > at_kill["iteration"], moment

    steps = tensorboard_steps(out / "tensorboard", "perf/env_steps_per_s")
    assert steps == sorted(set(steps)) and len(steps) == final["iteration"], (steps, moment)
    assert at_kill["env_steps"] in steps, moment  # the checkpoint's own step is kept
    # The replay memory came back with the checkpoint: at the first resumed iteration it holds
    # more transitions than were sampled since the resume.
    sizes = dict(zip(steps, tensorboard_values(out / "tensorboard", "replay/size"), strict=True))
    first = min(s for s in steps if s > at_kill["env_steps"])
    assert sizes[first] > first - at_kill["env_steps"], (sizes, at_kill, moment)
    assert sizes[first] == min(first, 50_000), moment  # every transition since step 0


def test_generative_driver_killed_at_a_random_moment_resumes(tmp_path, kill_seed):
    """The VAE with 2 Train workers; the driver is SIGKILLed at a random moment after epoch 2,
    then the same command runs again with --resume: it continues from the last checkpoint Ray
    Train registered (possibly the last epoch's, if the kill came after its registration) to
    epoch 8, never trains epoch 1 again, and TensorBoard and the progress log show no epoch
    twice."""
    from tests.test_vae_job import _small_dataset

    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    out = tmp_path / "run"
    epochs = 8
    argv = [
        "train", "vae", "--dataset", str(data), "--epochs", str(epochs), "--num-workers", "2",
        "--set", "grid_n=4", "--set", "batch_size=32", "--output", str(out),
    ]  # fmt: skip
    progress = out / "progress.log"
    proc = start(argv)
    try:
        wait_for(lambda: progress.exists() and len(progress.read_text().splitlines()) >= 2, proc)
        delay = random.Random(kill_seed).uniform(0.0, 1.5)
        moment = f"{delay:.2f} s after epoch 2 (seed {kill_seed})"
        print(f"killing the driver {moment}")
        wait_until(time.monotonic() + delay, proc, what=f"(the kill was {moment})")
    finally:
        kill_driver(proc)
    assert not (out / "result.json").exists(), moment

    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, f"killed {moment}: {resumed.stderr}"
    assert f"epoch 1/{epochs} |" not in resumed.stderr, moment  # continued, not started over
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == epochs, moment
    lines = progress.read_text().splitlines()
    done = [int(line.split(" | ")[0].split()[-1].split("/")[0]) for line in lines]
    # Each epoch at most once, in order (an epoch registered just before the kill may lack its
    # line: rank 0 writes it after Train registers the checkpoint).
    assert done == sorted(set(done)) and done[:2] == [1, 2], (done, moment)
    steps = tensorboard_steps(out / "tensorboard", "train/train_loss")
    assert steps == list(range(1, epochs + 1)), (steps, moment)

    # A damaged checkpoint (the one Ray Train registered last, cut short) is refused on
    # --resume, before anything changes: never retried into a traceback, never a fresh start.
    from generative.checkpoints import registered_checkpoint

    ckpt = registered_checkpoint(out)
    assert ckpt is not None and ckpt == Path(result["checkpoint"])
    state = ckpt / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    before = tree(out)
    refused = run_cli(*argv[:-2], "--epochs", str(epochs + 1), "--output", str(out), "--resume")
    errors = [line for line in refused.stderr.splitlines() if "error" in line.lower()]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"rlgen: error: checkpoint {ckpt}: cannot be restored")
    assert tree(out) == before


def test_kill_during_a_checkpoint_write_and_a_corrupt_checkpoint(tmp_path):
    """The driver is SIGKILLed while iteration 3's checkpoint is being written (a fault file
    pauses the write after RLlib's part, before rlgen's files and the rename): the half-written
    directory is there when the kill lands and is never taken as the latest; eval and --resume
    use iteration 2's and the leftover is cleared. Then a whole checkpoint is truncated on disk:
    --resume refuses it with one line, exit 2, and changes nothing (never a fresh start)."""
    from algorithms.checkpoints import (
        CHECKPOINT_FAULT_DIR_ENV,
        STATE_FILE,
        WEIGHTS_FILE,
        find_checkpoint,
    )

    out = tmp_path / "run"
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "pause-iter_000003").write_text("")
    partial = out / "checkpoints" / ".tmp_iter_000003"
    argv = dqn_argv(out, max_env_steps=20000, checkpoint_every=1)
    proc = start(argv, env={CHECKPOINT_FAULT_DIR_ENV: str(faults)})
    try:
        wait_for(lambda: (faults / "paused-iter_000003").exists(), proc, what="(the pause)")
        in_write = sorted(p.name for p in partial.iterdir())  # the write is stopped here
    finally:
        kill_driver(proc)
    assert in_write and STATE_FILE not in in_write and WEIGHTS_FILE not in in_write, in_write
    assert sorted(p.name for p in partial.iterdir()) == in_write  # left behind by the kill
    # Marked, so that a resume reusing the leftover (same name: iteration 3 is written again)
    # instead of clearing it would show.
    (partial / "left-by-the-killed-write").write_text("")
    whole = rl_checkpoints(out)
    assert [p.name for p in whole] == ["iter_000001", "iter_000002"]
    assert find_checkpoint(out) == whole[-1]
    evaluated = run_cli("eval", str(out), "--episodes", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["checkpoint"] == str(whole[-1])

    at = json.loads((whole[-1] / STATE_FILE).read_text())["state"]
    assert at["iteration"] == 2
    more = at["env_steps"] + 400
    resumed = run_cli(*dqn_argv(out, max_env_steps=more, checkpoint_every=1), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {whole[-1]} " in resumed.stderr
    assert not list((out / "checkpoints").glob(".tmp_*"))
    assert not list((out / "checkpoints").glob("*/left-by-the-killed-write"))
    again = json.loads((out / "checkpoints" / "iter_000003" / STATE_FILE).read_text())["state"]
    assert again["env_steps"] > at["env_steps"]  # iteration 3 trained anew after iteration 2

    newest = rl_checkpoints(out)[-1]
    module_state = newest / "learner_group/learner/rl_module/default_policy/module_state.pkl"
    module_state.write_bytes(module_state.read_bytes()[: module_state.stat().st_size // 2])
    before = tree(out)
    refused = run_cli("train", "dqn", "--resume", str(out), "--max-env-steps", str(more + 400))
    errors = [line for line in refused.stderr.splitlines() if "error" in line.lower()]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"rlgen: error: checkpoint {newest}: cannot be restored")
    assert "Traceback" not in refused.stderr
    assert tree(out) == before
