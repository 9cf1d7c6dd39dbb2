"""What the fault tests (``tests/test_faults*.py``) share: the corridor env and small settings
per algorithm, TensorBoard's view of a run, rlgen started as a process one can kill, and a run's
checkpoints and files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

ENV = "tests.fault_envs:Corridor-v0"

# Small, quick settings per algorithm on the 20-step corridor with 2 rollout actors.
RL_FAST = {
    "reinforce": {"episodes_per_batch": 4},
    "a2c": {"rollout_fragment_length": 10, "min_sample_timesteps_per_iteration": 40},
    "dqn": {"rollout_steps_per_iteration": 40, "learning_starts": 40, "replay_capacity": 2000},
}


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


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """``rlgen ARGV`` in its own session (so the Ray instance it starts can be cleaned up);
    ``env``: extra environment variables for this run."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "rlgen.py"), *argv], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fails if rlgen ends first or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"rlgen ended early {what}: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"timed out {what}"
        time.sleep(0.05)


def wait_until(moment: float, proc: subprocess.Popen, what: str) -> None:
    """Poll the clock until ``moment`` (``time.monotonic``) with the driver still running."""
    wait_for(lambda: time.monotonic() >= moment, proc, what=what)


def kill_driver(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then everything else of its session (its Ray instance), as losing
    the machine would."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def rl_checkpoints(run: Path) -> list[Path]:
    return sorted(
        p for p in (run / "checkpoints").glob("iter_*") if (p / "rlgen_state.json").is_file()
    )


def dqn_argv(out: Path, *, max_env_steps: int, checkpoint_every: int) -> list[str]:
    """``rlgen train dqn`` on CartPole, its replay stored in every checkpoint (so checkpoints
    grow and take a while to write), to ``out``."""
    return [
        "train", "dqn", "--env", "CartPole-v1", "--seed", "0",
        "--max-env-steps", str(max_env_steps), "--stop-reward", "1000",
        "--checkpoint-every", str(checkpoint_every), "--video-frames", "0",
        "--set", "store_replay_in_checkpoint=true", "--output", str(out),
    ]  # fmt: skip


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
