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

import contextlib
import json
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests import fault_envs as fe
from tests.conftest import ROOT, run_cli

ENV = "tests.fault_envs:Corridor-v0"

# Small, quick settings per algorithm on the 20-step corridor with 2 rollout actors.
RL_FAST = {
    "reinforce": {"episodes_per_batch": 4},
    "a2c": {"rollout_fragment_length": 10, "min_sample_timesteps_per_iteration": 40},
    "dqn": {"rollout_steps_per_iteration": 40, "learning_starts": 40, "replay_capacity": 2000},
}


# Rollout actors are processes of the test session's Ray instance, which took this process's
# environment when it started: so the variable naming the envs' fault directory is set here, at
# import (before any test starts Ray), to a link private to this pytest process (two suites at
# once never share it), and the ``fault_dir`` fixture points the link at each test's own
# directory. An env resolves the link when made, so an actor of one test never reads or writes
# another test's directory. A CLI run gets the variable naming its directory for that run only.
_FAULT_LINK = Path(tempfile.gettempdir()) / f"rlgen-faults-{os.getpid()}-{secrets.token_hex(8)}"
os.environ[fe.FAULT_DIR_ENV] = str(_FAULT_LINK)


@pytest.fixture
def fault_dir(tmp_path):
    faults = tmp_path / "faults"
    faults.mkdir()
    _FAULT_LINK.symlink_to(faults, target_is_directory=True)  # fails if the name is taken
    try:
        yield faults
    finally:
        _FAULT_LINK.unlink()


@pytest.fixture
def kill_seed() -> int:
    """The seed of a kill's random moment: ``RLGEN_FAULT_SEED`` when set (to replay a failure),
    else one from the OS; printed, and named in the test's assertion messages."""
    seed = int(os.environ.get("RLGEN_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill moment seed: {seed} (RLGEN_FAULT_SEED={seed} replays it)")
    return seed


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


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_a_round_whose_every_actor_died_waits_for_a_replacement(
    algorithm, fault_dir, ray_local, tmp_path
):
    """The only rollout actor is SIGKILLed mid-sample: nothing comes back from that call, and
    the round samples again from its replacement instead of ending without env steps (every
    report shows more env steps than the last)."""
    import rlgen

    steps: list[int] = []
    phase = {"armed": False, "after": 0}

    def on_report(report) -> bool:
        steps.append(report.step)
        if not phase["armed"] and report.iteration >= 2:
            fe.arm(fault_dir, "kill", 10)
            phase["armed"] = True
        elif phase["armed"] and len(_runner_pids(fault_dir)) >= 2:
            phase["after"] += 1
            return phase["after"] >= 3
        return False

    result = rlgen.train(
        algorithm,
        env=ENV,
        output=tmp_path / "run",
        num_env_runners=1,
        seed=0,
        time_budget_s=180,
        stop_reward=1e9,
        video_frames=0,
        overrides={**RL_FAST[algorithm], "delay_between_env_runner_restarts_s": 0.0},
        on_report=on_report,
    )
    assert result.stop_reason == "callback", (phase, result.stop_reason)
    assert [n.split("-", 2)[2] for n in fe.claimed(fault_dir)] == ["kill-10.0"]
    assert all(b > a for a, b in zip(steps[:-1], steps[1:], strict=True)), steps


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_a_round_gives_up_after_the_tolerated_number_of_failed_calls(
    algorithm, fault_dir, ray_local
):
    """Every replacement actor dies too: the round samples again only as often as
    ``num_consecutive_env_runner_failures_tolerance`` allows (2 here: exactly two actors die;
    one env per actor, so each claims one armed fault), then the training step raises one
    clear error instead of looping forever."""
    from algorithms.configure import RLRunSpec, build_config
    from envs import permit_env_module

    permit_env_module(ENV)  # named here, as a command or rlgen.train names it
    spec = RLRunSpec(
        algorithm=algorithm, env=ENV, num_env_runners=1, num_envs_per_env_runner=1, seed=0,
        overrides={
            **RL_FAST[algorithm],
            "delay_between_env_runner_restarts_s": 0.0,
            "num_consecutive_env_runner_failures_tolerance": 2,
        },
    )  # fmt: skip
    spec.fill_defaults()
    algo = build_config(spec).build_algo()
    try:
        algo.train()
        fe.arm(fault_dir, "kill", 3, count=10)
        with pytest.raises(RuntimeError, match="sample call failed, 2 times in a row"):
            for _ in range(5):
                algo.train()
        assert len(fe.claimed(fault_dir)) == 2
    finally:
        algo.stop()


def test_restarted_actor_gets_the_learners_current_weights(fault_dir, ray_local):
    """After an actor's env raised and Ray restarted the process, RLlib's restore (run before
    every training step) gives it the Learner's weights of now, not its initial ones."""
    import numpy as np

    from algorithms.configure import RLRunSpec, build_config
    from envs import permit_env_module

    permit_env_module(ENV)  # named here, as a command or rlgen.train names it
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


def _scalars(logdir: Path, tag: str) -> list:
    """``tag``'s points as TensorBoard shows them (every event file of the directory, in
    order, with its restart markers applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return list(acc.Scalars(tag))


def tensorboard_steps(logdir: Path, tag: str) -> list[int]:
    return [event.step for event in _scalars(logdir, tag)]


def tensorboard_values(logdir: Path, tag: str) -> list[float]:
    return [event.value for event in _scalars(logdir, tag)]


TINY_PIXELCNN = {"features": 12, "layers": 2, "output_features": 24}


def test_train_worker_failures_resume_from_the_last_checkpoint(tmp_path):
    """The VAE and the PixelCNN, side by side (two runs at once, the same faults in each):
    2 Train workers, 3 epochs; the worker of rank 1 raises at its second batch of epoch 2,
    then (in the retried job) the worker of rank 0 is SIGKILLed at its second batch of epoch 3.
    Each failure restarts the workers from the last checkpoint: every epoch is trained and
    reported once, in order, and the job ends with epoch 3."""
    from concurrent.futures import ThreadPoolExecutor

    from generative.faults import FAULT_DIR_ENV
    from tests.test_vae_job import _small_dataset

    data = _small_dataset(tmp_path / "digits", n_train=128, n_test=32)
    models = ("vae", "pixelcnn")
    for model in models:
        faults = tmp_path / model / "faults"
        faults.mkdir(parents=True)
        for name in ("raise-rank1-epoch2-batch1", "kill-rank0-epoch3-batch1"):
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
        assert sorted(p.name for p in faults.iterdir()) == [
            "claimed-kill-rank0-epoch3-batch1", "claimed-raise-rank1-epoch2-batch1",
        ], model  # fmt: skip
        # Ray Train saw the failure and retried.
        assert "injected worker failure" in proc.stderr, (model, proc.stderr)
        result = json.loads((out / "result.json").read_text())
        assert result["epochs"] == 3, model
        # Epoch 1 was not trained again after either failure, and no epoch was reported twice.
        progress = (out / "progress.log").read_text().splitlines()
        assert [line.split(" | ")[0] for line in progress] == [
            f"[{model}] epoch {e}/3" for e in (1, 2, 3)
        ]
        assert [proc.stderr.count(f"epoch {e}/3 |") for e in (1, 2, 3)] == [1, 1, 1], model
        assert tensorboard_steps(out / "tensorboard", "train/train_loss") == [1, 2, 3], model


def _start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """``rlgen ARGV`` in its own session (so the Ray instance it starts can be cleaned up);
    ``env``: extra environment variables for this run."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "rlgen.py"), *argv], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fails if rlgen ends first or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"rlgen ended early {what}: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"timed out {what}"
        time.sleep(0.05)


def _wait_until(moment: float, proc: subprocess.Popen, what: str) -> None:
    """Poll the clock until ``moment`` (``time.monotonic``) with the driver still running."""
    _wait_for(lambda: time.monotonic() >= moment, proc, what=what)


def _kill_driver(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then everything else of its session (its Ray instance), as losing
    the machine would."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rl_checkpoints(run: Path) -> list[Path]:
    return sorted(
        p for p in (run / "checkpoints").glob("iter_*") if (p / "rlgen_state.json").is_file()
    )


def _dqn_argv(out: Path, *, max_env_steps: int, checkpoint_every: int) -> list[str]:
    """``rlgen train dqn`` on CartPole, its replay stored in every checkpoint (so checkpoints
    grow and take a while to write), to ``out``."""
    return [
        "train", "dqn", "--env", "CartPole-v1", "--seed", "0",
        "--max-env-steps", str(max_env_steps), "--stop-reward", "1000",
        "--checkpoint-every", str(checkpoint_every), "--video-frames", "0",
        "--set", "store_replay_in_checkpoint=true", "--output", str(out),
    ]  # fmt: skip


def test_driver_killed_at_a_random_moment_resumes_with_replay_and_tensorboard(tmp_path, kill_seed):
    """DQN with its replay stored in checkpoints; the driver is SIGKILLed at a random moment
    after its first checkpoint, then the same command runs again with --resume. It continues
    from the last checkpoint: iterations and env steps go on from there, the replay memory
    comes back (it is larger than what the resumed run has sampled), and TensorBoard shows
    every iteration once (the killed run's steps after the checkpoint are hidden)."""
    out = tmp_path / "run"
    argv = _dqn_argv(out, max_env_steps=5000, checkpoint_every=3)
    proc = _start(argv)
    try:
        _wait_for(lambda: bool(_rl_checkpoints(out)), proc)
        first_ckpt = json.loads((_rl_checkpoints(out)[0] / "rlgen_state.json").read_text())
        # Let it write TensorBoard steps past that checkpoint (those a resume must not repeat),
        # then kill it at a random moment, printed for the record.
        _wait_for(
            lambda: (
                max(tensorboard_steps(out / "tensorboard", "perf/env_steps_per_s"))
                > first_ckpt["state"]["env_steps"]
            ),
            proc,
        )
        delay = random.Random(kill_seed).uniform(0.0, 3.0)
        moment = f"{delay:.2f} s after a step past its first checkpoint (seed {kill_seed})"
        print(f"killing the driver {moment}")
        _wait_until(time.monotonic() + delay, proc, what=f"(the kill was {moment})")
    finally:
        _kill_driver(proc)
    last = _rl_checkpoints(out)[-1]
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
    proc = _start(argv)
    try:
        _wait_for(lambda: progress.exists() and len(progress.read_text().splitlines()) >= 2, proc)
        delay = random.Random(kill_seed).uniform(0.0, 1.5)
        moment = f"{delay:.2f} s after epoch 2 (seed {kill_seed})"
        print(f"killing the driver {moment}")
        _wait_until(time.monotonic() + delay, proc, what=f"(the kill was {moment})")
    finally:
        _kill_driver(proc)
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
    before = _tree(out)
    refused = run_cli(*argv[:-2], "--epochs", str(epochs + 1), "--output", str(out), "--resume")
    errors = [line for line in refused.stderr.splitlines() if "error" in line.lower()]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"rlgen: error: checkpoint {ckpt}: cannot be restored")
    assert _tree(out) == before


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


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
    argv = _dqn_argv(out, max_env_steps=20000, checkpoint_every=1)
    proc = _start(argv, env={CHECKPOINT_FAULT_DIR_ENV: str(faults)})
    try:
        _wait_for(lambda: (faults / "paused-iter_000003").exists(), proc, what="(the pause)")
        in_write = sorted(p.name for p in partial.iterdir())  # the write is stopped here
    finally:
        _kill_driver(proc)
    assert in_write and STATE_FILE not in in_write and WEIGHTS_FILE not in in_write, in_write
    assert sorted(p.name for p in partial.iterdir()) == in_write  # left behind by the kill
    # Marked, so that a resume reusing the leftover (same name: iteration 3 is written again)
    # instead of clearing it would show.
    (partial / "left-by-the-killed-write").write_text("")
    whole = _rl_checkpoints(out)
    assert [p.name for p in whole] == ["iter_000001", "iter_000002"]
    assert find_checkpoint(out) == whole[-1]
    evaluated = run_cli("eval", str(out), "--episodes", "1")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["checkpoint"] == str(whole[-1])

    at = json.loads((whole[-1] / STATE_FILE).read_text())["state"]
    assert at["iteration"] == 2
    more = at["env_steps"] + 400
    resumed = run_cli(*_dqn_argv(out, max_env_steps=more, checkpoint_every=1), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {whole[-1]} " in resumed.stderr
    assert not list((out / "checkpoints").glob(".tmp_*"))
    assert not list((out / "checkpoints").glob("*/left-by-the-killed-write"))
    again = json.loads((out / "checkpoints" / "iter_000003" / STATE_FILE).read_text())["state"]
    assert again["env_steps"] > at["env_steps"]  # iteration 3 trained anew after iteration 2

    newest = _rl_checkpoints(out)[-1]
    module_state = newest / "learner_group/learner/rl_module/default_policy/module_state.pkl"
    module_state.write_bytes(module_state.read_bytes()[: module_state.stat().st_size // 2])
    before = _tree(out)
    refused = run_cli("train", "dqn", "--resume", str(out), "--max-env-steps", str(more + 400))
    errors = [line for line in refused.stderr.splitlines() if "error" in line.lower()]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert errors[0].startswith(f"rlgen: error: checkpoint {newest}: cannot be restored")
    assert "Traceback" not in refused.stderr
    assert _tree(out) == before


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


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_a_nan_reward_skips_updates_and_the_run_goes_on(algorithm, fault_dir, ray_local, tmp_path):
    """One game with a NaN reward: the updates it poisons are skipped and counted in
    TensorBoard, and the run reaches its step limit with finite weights."""
    import rlgen

    def on_report(report) -> bool:
        if report.iteration == 2:
            fe.arm(fault_dir, "nan", 5)
        return False

    out = tmp_path / "run"
    result = rlgen.train(
        algorithm, env=ENV, output=out, seed=0, max_env_steps=1200, stop_reward=1e9,
        video_frames=0, overrides=RL_FAST[algorithm], on_report=on_report,
    )  # fmt: skip
    assert result.stop_reason == "max_env_steps"
    assert len(fe.claimed(fault_dir)) == 1
    skipped = tensorboard_values(out / "tensorboard", "learner/nonfinite_updates_skipped")
    assert max(skipped) >= 1
    import torch

    weights = torch.load(Path(result.checkpoint) / "policy_weights.pt", weights_only=True)
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())
    assert rlgen.evaluate(result.checkpoint, episodes=1).greedy_return_mean == 20.0


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
    checkpoints = _rl_checkpoints(out)
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
        proc = run_cli(*_dqn_argv(out, max_env_steps=40000, checkpoint_every=2))
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        assert proc.returncode == 1 and len(errors) == 1, proc.stderr
        last = _rl_checkpoints(out)[-1]
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
