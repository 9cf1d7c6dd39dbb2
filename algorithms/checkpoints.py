"""RL checkpoints: ``<run>/checkpoints/iter_<iteration>/``, RLlib's own checkpoint of the
Algorithm plus ``rlgen_state.json`` (the run spec and the run loop's counters). Written under a
temporary name and renamed when whole; the newest two are kept. Found by runkit's one rule."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from runkit.checkpoints import latest_checkpoint
from runkit.rundir import write_json_atomic

STATE_FILE = "rlgen_state.json"
CHECKPOINTS = "checkpoints"
PATTERN = f"{CHECKPOINTS}/iter_*"
KEEP_CHECKPOINTS = 2
MODULE_SUBDIR = Path("learner_group") / "learner" / "rl_module" / "default_policy"


def find_checkpoint(path: Path | str) -> Path:
    """A checkpoint directory, or a run directory's newest checkpoint."""
    return latest_checkpoint(path, marker=STATE_FILE, pattern=PATTERN, kind="RL")


def save_checkpoint(algo: Any, run_dir: Path, spec: Any, state: dict) -> Path:
    ckpt_root = run_dir / CHECKPOINTS
    ckpt_root.mkdir(exist_ok=True)
    target = ckpt_root / f"iter_{state['iteration']:06d}"
    tmp = ckpt_root / f".tmp_{target.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    write_json_atomic(tmp / STATE_FILE, {"spec": dataclasses.asdict(spec), "state": state})
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    for old in sorted(ckpt_root.glob("iter_*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return target
