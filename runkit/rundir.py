"""Run directories and result files.

A run directory holds ``run.json`` (what was asked for, so ``--resume`` can rebuild the job),
``result.json`` (the DESIGN contract), ``checkpoints/`` and ``tensorboard/``. An existing run
directory is never reused unless the user asks for ``--resume``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from runkit.errors import UserError

RUN_FILE = "run.json"
RESULT_FILE = "result.json"


def new_run_dir(output: str | None, *, prefix: str, resume: bool) -> Path:
    """Return the run directory, created if new.

    ``output=None`` makes a fresh ``runs/<prefix>-<timestamp>``. An existing non-empty directory
    is refused unless ``resume``; ``resume`` on a directory without ``run.json`` is refused.
    """
    if output is None:
        if resume:
            raise UserError("--resume needs the run directory: --resume DIR or --output DIR")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{prefix}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{prefix}-{stamp}-{n}"
    else:
        path = Path(output)
    if resume:
        if not (path / RUN_FILE).is_file():
            raise UserError(f"--resume {path}: not an rlgen run directory (no {RUN_FILE})")
        return path.resolve()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(
            f"--output {path}: already exists and is not empty; pass --resume to continue that "
            "run or choose a new directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data
