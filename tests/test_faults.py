"""Faults injected into real runs.

- RL: rollout actors whose env raises or whose process is killed (during sampling and between
  iterations). Each run must go on, restart the actor, keep its counters rising and never count
  a cut-short game as a finished one. The env is ``tests.fault_envs:Corridor-v0``: every
  finished game returns exactly 20, so a partial game in the game window would pull the mean
  below 20.
- Generative: Ray Train workers that raise or are killed mid-epoch; the job goes on from the
  last checkpoint, epochs are never counted twice, TensorBoard shows each epoch once.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
from pathlib import Path

import pytest

from tests import fault_envs as fe
from tests.conftest import run_cli

ENV = "tests.fault_envs:Corridor-v0"

# Small, quick settings per algorithm on the 20-step corridor with 2 rollout actors.
RL_FAST = {
    "reinforce": {"episodes_per_batch": 4},
    "a2c": {"rollout_fragment_length": 10, "min_sample_timesteps_per_iteration": 40},
    "dqn": {"rollout_steps_per_iteration": 40, "learning_starts": 40, "replay_capacity": 2000},
}


@pytest.fixture
def fault_dir():
    shutil.rmtree(fe.DEFAULT_FAULT_DIR, ignore_errors=True)
    fe.DEFAULT_FAULT_DIR.mkdir(parents=True)
    yield fe.DEFAULT_FAULT_DIR
    shutil.rmtree(fe.DEFAULT_FAULT_DIR, ignore_errors=True)


def _runner_pids(fault_dir: Path) -> set[int]:
    """Processes other than this one that made a Corridor env (rollout actors)."""
    pids = {int(p.name.split("-")[1]) for p in fault_dir.glob("pid-*")}
    return pids - {os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_rollout_actor_failures_are_survived(algorithm, fault_dir, ray_local, tmp_path):
    """Three faults in one run with 2 rollout actors: an env raises mid-game, an actor process
    is SIGKILLed mid-game (during sampling), and one is SIGKILLed between iterations. Each time
    a new actor process takes over, the run goes on to its stop, env steps only rise, and the
    game window holds full games only."""
    import rlgen

    phase = {"n": 0, "after": 0}
    steps: list[int] = []

    def on_report(report) -> bool:
        steps.append(report.step)
        pids = _runner_pids(fault_dir)
        if phase["n"] == 0 and report.iteration >= 2:
            fe.arm(fault_dir, "raise", 10)
            phase["n"] = 1
        elif phase["n"] == 1 and len(pids) >= 3:  # the failed actor was replaced
            fe.arm(fault_dir, "kill", 10)
            phase["n"] = 2
        elif phase["n"] == 2 and len(pids) >= 4:
            victim = max(pid for pid in pids if _alive(pid))
            os.kill(victim, signal.SIGKILL)
            phase["n"] = 3
        elif phase["n"] == 3 and len(pids) >= 5:
            phase["n"] = 4
        elif phase["n"] == 4:
            phase["after"] += 1
            return phase["after"] >= 3  # a few rounds with the last replacement in service
        return False

    result = rlgen.train(
        algorithm,
        env=ENV,
        output=tmp_path / "run",
        num_env_runners=2,
        seed=0,
        time_budget_s=240,
        stop_reward=1e9,
        video_frames=0,
        overrides={**RL_FAST[algorithm], "delay_between_env_runner_restarts_s": 0.0},
        on_report=on_report,
    )
    assert phase["n"] == 4 and result.stop_reason == "callback", (phase, result.stop_reason)
    assert sorted(n.split("-", 2)[2] for n in fe.claimed(fault_dir)) == ["kill-10.0", "raise-10.0"]
    assert len(_runner_pids(fault_dir)) == 5  # 2 actors + 3 replacements
    assert all(b > a for a, b in zip(steps[:-1], steps[1:], strict=True)), steps
    # Every game in the window is a full one (exactly 20), none of the 3 cut-short ones.
    assert result.episode_return_mean == 20.0
    assert math.isfinite(result.best_episode_return_mean)
    if algorithm == "reinforce":
        # Healthy actors make up a failed one's share: every batch is 4 whole 20-step games.
        assert {b - a for a, b in zip(steps[:-1], steps[1:], strict=True)} == {80}, steps


def test_restarted_actor_gets_the_learners_current_weights(fault_dir, ray_local):
    """After an actor's env raised and Ray restarted the process, RLlib's restore (run before
    every training step) gives it the Learner's weights of now, not its initial ones."""
    import time

    import numpy as np

    from algorithms.configure import RLRunSpec, build_config

    spec = RLRunSpec(
        algorithm="reinforce", env=ENV, num_env_runners=2, seed=0,
        overrides={**RL_FAST["reinforce"], "delay_between_env_runner_restarts_s": 0.0},
    )  # fmt: skip
    spec.fill_defaults()
    algo = build_config(spec).build_algo()
    try:
        initial = algo.learner_group.get_weights(module_ids=["default_policy"])["default_policy"]
        algo.train()
        fe.arm(fault_dir, "raise", 10)
        algo.train()  # one actor fails in this round
        assert len(fe.claimed(fault_dir)) == 1
        restored: list[int] = []
        deadline = time.monotonic() + 120
        while not restored and time.monotonic() < deadline:
            time.sleep(0.5)
            restored = algo.restore_env_runners(algo.env_runner_group)
        assert len(restored) == 1
        learner = algo.learner_group.get_weights(module_ids=["default_policy"])["default_policy"]
        [runner] = algo.env_runner_group.foreach_env_runner(
            lambda r: r.module.get_state(), local_env_runner=False, remote_worker_ids=restored
        )
        assert set(runner) and set(runner) <= set(learner)
        for key, value in runner.items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(learner[key]), key)
        # ... and those are not the weights every actor starts with (two updates were made).
        assert any(not np.array_equal(initial[k], np.asarray(v)) for k, v in runner.items())
    finally:
        algo.stop()


def tensorboard_steps(logdir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` as TensorBoard shows them (every event file of the directory, in
    order, with its restart markers applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return [event.step for event in acc.Scalars(tag)]


TINY_PIXELCNN = {"features": 12, "layers": 2, "output_features": 24}


@pytest.mark.parametrize("model", ["vae", "pixelcnn"])
def test_train_worker_failures_resume_from_the_last_checkpoint(model, tmp_path):
    """2 Train workers, 3 epochs: the worker of rank 1 raises at its second batch of epoch 2,
    then (in the retried job) the worker of rank 0 is SIGKILLed at its second batch of epoch 3.
    Each failure restarts the workers from the last checkpoint: every epoch is trained and
    reported once, in order, and the job ends with epoch 3."""
    from generative.worker_loop import FAULT_DIR_ENV
    from tests.test_vae_job import _small_dataset

    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    faults = tmp_path / "faults"
    faults.mkdir()
    for name in ("raise-rank1-epoch2-batch1", "kill-rank0-epoch3-batch1"):
        (faults / name).write_text("")
    settings = {"grid_n": 4, "batch_size": 32, **(TINY_PIXELCNN if model == "pixelcnn" else {})}
    out = tmp_path / "run"
    proc = run_cli(
        "train", model, "--dataset", str(data), "--epochs", "3", "--num-workers", "2",
        *(a for k, v in settings.items() for a in ("--set", f"{k}={v}")), "--output", str(out),
        env={FAULT_DIR_ENV: str(faults)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in faults.iterdir()) == [
        "claimed-kill-rank0-epoch3-batch1", "claimed-raise-rank1-epoch2-batch1",
    ]  # fmt: skip
    assert "injected worker failure" in proc.stderr  # Ray Train saw the failure and retried
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == 3
    # Epoch 1 was not trained again after either failure, and no epoch was reported twice.
    progress = (out / "progress.log").read_text().splitlines()
    assert [line.split(" | ")[0] for line in progress] == [
        f"[{model}] epoch {e}/3" for e in (1, 2, 3)
    ]
    assert [proc.stderr.count(f"epoch {e}/3 |") for e in (1, 2, 3)] == [1, 1, 1]
    assert tensorboard_steps(out / "tensorboard", "train/train_loss") == [1, 2, 3]
