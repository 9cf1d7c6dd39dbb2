"""Run directories and result files.

A run directory holds ``run.json`` (what was asked for, so ``--resume`` can rebuild the job),
``result.json`` (the README's "Outputs" contract), ``checkpoints/`` and ``tensorboard/``. An
existing run directory is never reused unless the user asks for ``--resume``. Run directories,
and the parents rlgen creates for them, are mode 0700 whatever the umask: what RLlib, Ray and
rlgen write inside (the pickles ``--resume`` loads among them) is the user's alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runkit.errors import UserError
from runkit.paths import create_new, make_private_dirs

RUN_FILE = "run.json"
RESULT_FILE = "result.json"


def new_run_dir(output: str | None, *, prefix: str, resume: bool, create: bool = True) -> Path:
    """Return the run directory, created (mode 0700, as are the parents it needs) if new and
    ``create`` (else checked only and returned as named: ``make_run_dir`` creates it).

    ``output=None`` makes a fresh ``runs/<prefix>-<timestamp>``. An existing non-empty directory
    is refused unless ``resume``; ``resume`` on a directory without ``run.json`` is refused. An
    existing empty directory becomes the run directory and is made private (0700).
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
    if not create:
        return path  # not resolved: a symlink named here is refused, never followed
    make_run_dir(path)
    return path.resolve()


def make_run_dir(path: Path) -> None:
    """Create the (checked) new run directory ``path``, or make an existing empty one private."""
    if path.is_dir():
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise UserError(f"--output {path}: cannot be made private ({exc.strerror})") from None
    make_private_dirs(path)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file.
    The temporary file is created new (mode 0600, never through a symlink of its name)."""
    tmp = path.with_name(path.name + ".tmp")
    with create_new(tmp) as f:
        f.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    os.replace(tmp, path)


# run.json, result.json, a checkpoint's rlgen_state.json: a few KB each. A larger file (or one
# nested deeper than the parser's recursion limit) is not one of them and is not parsed.
MAX_JSON_BYTES = 16 << 20


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from one of rlgen's own small files (which may come from elsewhere:
    bounded in size, a symlink not followed, anything else a one-line UserError)."""
    try:
        with open(path, "rb", opener=_no_follow) as f:
            raw = f.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise UserError(f"{path}: larger than {MAX_JSON_BYTES:,} bytes")
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


S = TypeVar("S")


def open_run(
    spec_class: type[S],
    *,
    kind: str,
    job: str,
    job_field: str,
    output: str | Path | None,
    resume: bool,
    fresh: Callable[[], S],
    prepare: Callable[[S], None],
    prefix: Callable[[S], str],
    given: dict[str, Any] | None = None,
    keep: tuple[str, ...] = (),
    write_on_resume: bool = True,
    ready: Callable[[S], None] | None = None,
) -> tuple[S, Path]:
    """The sequence every run starts with, RL and generative alike.

    Fresh: ``fresh()`` builds the spec, ``prepare(spec)`` checks all of it (and fills its
    defaults) *before* the run directory is created, so bad input writes nothing. Resume: the
    spec is read back from the run's ``run.json``; it must be a ``kind`` run of ``job``; the
    ``given`` values that are not None replace the stored ones (new limits, more epochs),
    except the ``keep`` fields (the env, the dataset), which must match when given; overrides
    are merged over the stored ones; then ``prepare``. Either way run.json is (re)written and
    ``(spec, run_dir)`` returned; with ``write_on_resume=False`` a resumed run's run.json is
    left to the caller (``write_spec``), which writes it once the checkpoint has loaded, so a
    refused checkpoint leaves the run as it was. ``ready(spec)``, if given, is called once the
    input and the output are accepted and before anything is written.
    """
    given = {k: v for k, v in (given or {}).items() if v is not None}
    if resume:
        run_dir = new_run_dir(None if output is None else str(output), prefix="", resume=True)
        spec = _stored_spec(spec_class, run_dir, kind, job, job_field, given, keep)
        prepare(spec)
        if ready is not None:
            ready(spec)
    else:
        spec = fresh()
        prepare(spec)
        out = None if output is None else str(output)
        run_dir = new_run_dir(out, prefix=prefix(spec), resume=False, create=False)
        if ready is not None:
            ready(spec)
        make_run_dir(run_dir)
        run_dir = run_dir.resolve()
    if write_on_resume or not resume:
        write_spec(run_dir, kind, spec)
    print(f"rlgen: run directory {run_dir}", file=sys.stderr)
    return spec, run_dir


def _stored_spec(
    spec_class: type[S],
    run_dir: Path,
    kind: str,
    job: str,
    job_field: str,
    given: dict[str, Any],
    keep: tuple[str, ...],
) -> S:
    """A resumed run's spec: read back from its run.json, checked to be a ``kind`` run of
    ``job``, with the ``given`` values (``keep`` ones must match) and overrides over it."""
    stored = read_json(run_dir / RUN_FILE)
    if stored.get("kind") != kind:
        raise UserError(f"--resume {run_dir}: that is a {stored.get('kind')} run, not {kind}")
    spec: Any
    try:
        spec = spec_class(**stored["spec"])
    except (KeyError, TypeError) as exc:
        raise UserError(
            f"--resume {run_dir}: {RUN_FILE} does not fit this version of rlgen ({exc})"
        ) from None
    if getattr(spec, job_field) != job:
        raise UserError(
            f"--resume {run_dir}: that run trained {getattr(spec, job_field)}, not {job}"
        )
    overrides = given.pop("overrides", {})
    for key, value in given.items():
        if key in keep and value != getattr(spec, key):
            raise UserError(
                f"--resume {run_dir}: that run used --{key} {getattr(spec, key)}, not {value}"
            )
        setattr(spec, key, value)
    spec.overrides.update(overrides)
    return spec


def write_spec(run_dir: Path, kind: str, spec: Any) -> None:
    write_json_atomic(run_dir / RUN_FILE, {"kind": kind, "spec": dataclasses.asdict(spec)})
