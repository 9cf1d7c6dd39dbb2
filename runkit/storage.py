"""Run directories on object storage: ``s3://`` and ``gs://`` outputs that outlive a cluster.

A run whose output is a URI works in a local mirror directory (``$RLGEN_MIRROR_DIR``, default
``$XDG_CACHE_HOME/rlgen/mirror`` or ``~/.cache/rlgen/mirror``, then ``<scheme>/<bucket>/<key>``)
and
copies it to the URI after every checkpoint, at most every ``PUSH_EVERY_S`` seconds between
checkpoints, and at the end. ``--resume URI`` first copies the URI down into a fresh mirror.
Ray Train writes its own checkpoints straight to ``<URI>/ray_train`` (multi-node Train needs
storage every worker reaches), so the mirror leaves that folder to it.

Object keys are data (``runkit.paths``): a key that is not a plain relative path (``..``, empty
or ``.`` parts, a leading ``/``, backslashes, control characters) is refused before anything is
written, and so is a mirror root that another user could change (a symlink, not the user's own,
group- or world-writable). Nothing is written, copied up or deleted through a symlink.

Filesystems come from pyarrow (``FileSystem.from_uri``), configured the way pyarrow reads the
environment: for S3 the usual AWS credentials and region, and ``AWS_ENDPOINT_URL_S3`` (or
``AWS_ENDPOINT_URL``) for an S3-compatible server; for GCS the application default credentials.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runkit.errors import UserError, first_line
from runkit.paths import (
    check_relative,
    create_new,
    inside,
    make_private_dirs,
    private_root,
    relative_problem,
    remove_tree,
)

SCHEMES = ("s3://", "gs://")
MIRROR_ENV = "RLGEN_MIRROR_DIR"
PUSH_EVERY_S = 30.0
# Checkpoint markers are copied after the rest of their checkpoint, so a copy cut short never
# leaves a remote checkpoint that the checkpoint rule would pick as complete.
MARKERS = ("rlgen_state.json", "state.pt")
TRAIN_STORAGE = "ray_train"  # written by Ray Train itself (generative checkpoints)
R = TypeVar("R")


def is_uri(path: str | Path | None) -> bool:
    return path is not None and str(path).startswith(SCHEMES)


def split_uri(uri: str) -> tuple[str, str]:
    """``("s3", "bucket/key")``; a UserError for a URI without a bucket or whose path is not
    plain names (it becomes the mirror's local path)."""
    scheme, _, rest = uri.partition("://")
    rest = rest.strip("/")
    if not rest or rest.startswith("/"):
        raise UserError(f"{uri}: a storage URI needs a bucket, as in {scheme}://BUCKET/PATH")
    problem = relative_problem(rest)
    if problem is not None:
        raise UserError(f"{uri!r}: its path {problem}; use {scheme}://BUCKET/NAME/NAME...")
    return scheme, rest


def filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem of ``uri`` and the path inside it (``bucket/key``)."""
    import pyarrow.fs as pafs

    split_uri(uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for one cause
        raise UserError(f"{uri}: cannot open this storage ({_why(exc)})") from None
    return fs, path.rstrip("/")


def mirror_root() -> Path:
    """The private directory holding every local copy: ``$RLGEN_MIRROR_DIR``, else
    ``$XDG_CACHE_HOME/rlgen/mirror``, else ``~/.cache/rlgen/mirror``; created mode 0700, and
    refused (UserError) when it is a symlink, another user's, or writable by others."""
    given = os.environ.get(MIRROR_ENV)
    if given:
        root = Path(given).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
        root = base / "rlgen" / "mirror"
    return private_root(root, what=f"mirror directory (${MIRROR_ENV})")


def mirror_dir(uri: str, *, purpose: str = "runs") -> Path:
    """The local working directory of the run at ``uri`` (``purpose="fetched"``: the copy that
    eval and sample read, kept apart from the working copy of a run in progress). Built from
    names only, never resolved: a symlink on the way is refused where the copy is made or
    deleted."""
    scheme, rest = split_uri(uri)
    return mirror_root() / purpose / scheme / rest


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


class Mirror:
    """Copies a local run directory to its URI: only the files that changed since the last
    copy, markers last; files it copied before and that are gone locally (pruned checkpoints)
    are deleted there too."""

    def __init__(
        self,
        uri: str,
        local: Path,
        *,
        skip: tuple[str, ...] = (TRAIN_STORAGE,),
        root: Path | None = None,
    ):
        """``root``: the directory ``local`` lies in and that ``pull`` may delete inside (the
        mirror root for a run's copy; by default ``local``'s parent)."""
        self.uri = uri.rstrip("/")
        self.local = Path(local)
        self.below = Path(root) if root is not None else self.local.parent
        self.skip = skip
        self.fs, self.root = filesystem(self.uri)
        self.sent: dict[str, tuple[int, int]] = {}
        self.last_push = 0.0

    def _local_files(self) -> dict[str, tuple[int, int]]:
        """Regular files of the local copy, by relative path; symlinks are skipped and
        symlinked directories never entered, so only the run's own files go up."""
        found: dict[str, tuple[int, int]] = {}
        for top, dirs, files in os.walk(self.local, followlinks=False):
            base = Path(top).relative_to(self.local)
            if base == Path("."):
                dirs[:] = [d for d in dirs if d not in self.skip]
            for name in files:
                st = os.lstat(Path(top) / name)
                if name.endswith(".tmp") or not stat.S_ISREG(st.st_mode):
                    continue
                found[(base / name).as_posix()] = (st.st_size, st.st_mtime_ns)
        return found

    def remote_files(self) -> list[str]:
        """Paths (relative to the URI) of the files stored there, none if it does not exist."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise UserError(f"{self.uri}: cannot list ({_why(exc)})") from None
        n = len(self.root) + 1
        return sorted(i.path[n:] for i in infos if i.type == pafs.FileType.File)

    def push(self) -> int:
        """Copy what changed; returns how many files were copied."""
        now = self._local_files()
        changed = [rel for rel, sig in now.items() if self.sent.get(rel) != sig]
        changed.sort(key=lambda rel: (rel.rsplit("/", 1)[-1] in MARKERS, rel))
        for rel in changed:
            target = f"{self.root}/{rel}"
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            fd = os.open(self.local / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as src, self.fs.open_output_stream(target) as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
            self.sent[rel] = now[rel]
        for rel in sorted(set(self.sent) - set(now)):
            try:
                self.fs.delete_file(f"{self.root}/{rel}")
            except FileNotFoundError:
                pass
            del self.sent[rel]
        self.last_push = time.monotonic()
        return len(changed)

    def pull(self) -> int:
        """Replace the local directory by a copy of what is stored at the URI (less the skipped
        folders); returns how many files were copied. Every key is checked before anything is
        deleted or written: one that is not a plain relative path, or that names a file and a
        folder at once, is refused (UserError naming it)."""
        files = [rel for rel in self.remote_files() if rel.split("/")[0] not in self.skip]
        dests = self.destinations(files)
        remove_tree(self.local, below=self.below)
        make_private_dirs(self.local, below=self.below)
        for rel, dest in zip(files, dests, strict=True):
            make_private_dirs(dest.parent, below=self.below)
            with self.fs.open_input_stream(f"{self.root}/{rel}") as src, create_new(dest) as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        self.sent = self._local_files()
        return len(files)

    def destinations(self, files: list[str]) -> list[Path]:
        """The local path of each stored file, all checked to stay inside the local copy."""
        what = f"object key under {self.uri}:"
        dests = [inside(self.local, check_relative(rel, what=what), what=what) for rel in files]
        folders = {
            rel.rsplit("/", i)[0]: rel for rel in files for i in range(1, rel.count("/") + 1)
        }
        for rel in files:
            if rel in folders:
                raise UserError(f"{what} {folders[rel]!r}: has the file {rel!r} as a folder")
        return dests

    def push_quietly(self) -> None:
        """A copy during the run: a storage hiccup is reported and retried at the next one."""
        try:
            self.push()
        except OSError as exc:
            print(f"rlgen: copying to {self.uri} failed ({_why(exc)}); retrying later",
                  file=sys.stderr)  # fmt: skip


def fetch(uri: str) -> Path:
    """A local copy of the run or checkpoint stored at ``uri`` (for eval and sample)."""
    mirror = Mirror(uri, mirror_dir(uri, purpose="fetched"), skip=(), root=mirror_root())
    if not mirror.remote_files():
        raise UserError(f"checkpoint {uri}: nothing stored there")
    mirror.pull()
    return mirror.local


def local_to_uri(value: str | None, local: Path, uri: str) -> str | None:
    """``value`` with the mirror directory (as given or with its symlinks resolved, as a run
    directory is reported; or, for Ray Train's checkpoint paths, the bucket path without its
    scheme) replaced by ``uri``."""
    if value is None:
        return None
    for base in dict.fromkeys((str(local), os.path.realpath(local))):
        if value == base or value.startswith(base + "/"):
            return uri.rstrip("/") + value[len(base) :]
    scheme, rest = split_uri(uri)
    if value.startswith(rest + "/"):
        return f"{scheme}://{value}"
    return value


def run_at_uri(
    uri: str,
    *,
    resume: bool,
    run: Callable[[Path, Callable[[bool], None]], R],
) -> R:
    """Run ``run(local_dir, sync)`` for an output URI and return its result with the paths in
    it (checkpoint, TensorBoard, images, run dir) pointing at the URI.

    A fresh run needs nothing stored at the URI; a resumed one a run stored there, copied down
    first. ``sync(checkpointed)`` copies the run directory up (after a checkpoint, or when
    ``PUSH_EVERY_S`` passed since the last copy); the result.json with URI paths is written and
    everything copied a last time at the end (a failure then is an error)."""
    from runkit.results import write_result

    local = mirror_dir(uri)
    mirror = Mirror(uri, local, root=mirror_root())
    stored = mirror.remote_files()
    if resume:
        if "run.json" not in stored:
            raise UserError(f"--resume {uri}: not an rlgen run (no run.json stored there)")
        copied = mirror.pull()
        print(f"rlgen: copied {copied} files from {uri} to {local}", file=sys.stderr)
    else:
        if stored:
            raise UserError(
                f"--output {uri}: already holds files; pass --resume to continue that run or "
                "choose a new location"
            )
        remove_tree(local, below=mirror.below)  # a stale copy of a run that never got there
        make_private_dirs(local, below=mirror.below)

    def sync(checkpointed: bool) -> None:
        if checkpointed or time.monotonic() - mirror.last_push >= PUSH_EVERY_S:
            mirror.push_quietly()

    result = run(local, sync)
    changes = {
        f.name: local_to_uri(getattr(result, f.name), local, uri)
        for f in dataclasses.fields(result)  # type: ignore[arg-type]
        if isinstance(getattr(result, f.name), str)
    }
    result = dataclasses.replace(result, **changes)  # type: ignore[type-var]
    write_result(local, result)  # type: ignore[arg-type]
    mirror.push()
    print(f"rlgen: run stored at {uri}", file=sys.stderr)
    return result
