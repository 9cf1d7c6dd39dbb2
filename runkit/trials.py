"""What a Tune trial of any kind of job shares with the machinery that runs it: the setup every
trial of an experiment gets, and the trial's log, one line per start, in
``trials/<trial id>.log`` beside its run directory."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from runkit.paths import make_private_dirs

TRIAL_LOG_SUFFIX = ".log"
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


def log_line(run_dir: Path, line: str) -> None:
    make_private_dirs(run_dir.parent)  # mode 0700, as every directory rlgen makes
    with open(trial_log(run_dir), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
