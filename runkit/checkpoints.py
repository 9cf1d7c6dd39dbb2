"""The one rule for finding checkpoints, for every job.

A checkpoint is a directory that holds its job's marker file (RL: ``rlgen_state.json``,
generative: ``state.pt``). A path given by the user is either such a directory or a run
directory; in a run directory the newest checkpoint is the one whose name sorts last among the
directories matching the job's pattern that hold the marker. Both kinds of job name their
checkpoints so that name order is time order (``iter_000120``; Ray Train's
``checkpoint_<date>_<time>``), and a half-written checkpoint never has the marker under its
final name, so it is never chosen.
"""

from __future__ import annotations

from pathlib import Path

from runkit.errors import UserError


def is_checkpoint(path: Path, marker: str) -> bool:
    return (Path(path) / marker).is_file()


def checkpoints_in(run_dir: Path, *, marker: str, pattern: str) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    found = [p for p in Path(run_dir).glob(pattern) if p.is_dir() and is_checkpoint(p, marker)]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(path: Path | str, *, marker: str, pattern: str, kind: str) -> Path:
    """``path`` itself when it is a checkpoint, else the newest checkpoint of the run directory
    ``path``; a UserError naming ``path`` when there is none."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path}: no such file or directory")
    if is_checkpoint(path, marker):
        return path
    found = checkpoints_in(path, marker=marker, pattern=pattern) if path.is_dir() else []
    if not found:
        raise UserError(f"checkpoint {path}: not an rlgen checkpoint or run directory ({kind})")
    return found[-1]
