"""What a Tune trial of any kind of job shares with the machinery that runs it: the setup every
trial of an experiment gets, and the trial's log, one line per start, in
``trials/<trial id>.log`` beside its run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runkit.paths import make_private_dirs

TRIAL_LOG_SUFFIX = ".log"
TRIAL_LOCK_SUFFIX = ".lock"
# How long a trial's new start waits for the process of its previous start to let go.
TRIAL_LOCK_WAIT_S = 600.0
ORIGIN_FILE = "rlgen_trial.json"  # in each checkpoint a trial reports: which trial wrote it
EXPLOIT_DIR = "exploited_checkpoint"


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """What every trial of an experiment shares (the sampled config comes from Tune)."""

    job: str
    target: str  # the env id or dataset
    trials_dir: str
    fixed: dict[str, Any]
    limits: dict[str, Any]  # the job kind's per-run limits the experiment sets
    seed: int
    num_workers: int = 1
    checkpoint_every: int = 10


def last_report(metrics: dict[str, Any]) -> dict[str, Any]:
    """A trial's last report to Tune. ``done`` ends the trial on it before the scheduler is
    asked: Population Based Training would otherwise exploit into a run with nothing left to
    train (the trial restarted under a new config, reporting the old run's result again)."""
    return {**metrics, "done": True}


def trial_log(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + TRIAL_LOG_SUFFIX)


@contextlib.contextmanager
def trial_lock(run_dir: Path, wait_s: float = TRIAL_LOCK_WAIT_S) -> Iterator[None]:
    """The run directory of a trial, for one start of it at a time. Tune stops a trial's actor
    gracefully and may start the trial again (a PBT exploit) while the old start still trains
    and writes checkpoints into the same directory; the new start waits here until the old
    one's process has let go (its lock, ``trials/<trial id>.lock``, goes with the process).
    Longer than ``wait_s``: a RuntimeError (the trial errors, with that reason)."""
    make_private_dirs(run_dir.parent)
    lock = run_dir.with_name(run_dir.name + TRIAL_LOCK_SUFFIX)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{run_dir}: an earlier start of this trial still holds it after "
                        f"{wait_s:g} s"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def log_line(run_dir: Path, line: str) -> None:
    make_private_dirs(run_dir.parent)  # mode 0700, as every directory rlgen makes
    with open(trial_log(run_dir), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
