"""Paths built from stored values, and files and directories rlgen writes: the Paths rules.

- A relative path read from a file or an object key (``check_relative``) is plain names joined
  by single ``/``: no empty, ``.`` or ``..`` part, no leading ``/``, no backslash or control
  character; joined to its directory (``inside``) it stays there, compared without following
  symlinks.
- Directories rlgen creates (runs, experiments, checkpoints, the mirror) are mode 0700 whatever
  the umask (``make_private_dirs``); below a root, every part that already exists must be a real
  directory, never a symlink.
- Files are created new (``create_new``: ``O_EXCL | O_NOFOLLOW``, mode 0600); whatever held the
  name before, a stale file or a symlink, is unlinked, never written through.
- A tree is deleted only when it is a real directory inside its root, reached without a symlink
  (``remove_tree``); ``remove_entry`` unlinks a symlink instead of deleting what it names.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from runkit.errors import UserError

MAX_NAME_BYTES = 255  # the longest file name common filesystems take
ALLOWED = "names joined by single '/', without '.', '..', backslashes or control characters"


def relative_problem(rel: str) -> str | None:
    """Why ``rel`` is not a plain relative path, or None when it is."""
    if not rel:
        return "is empty"
    if rel.startswith("/"):
        return "is absolute"
    if "\\" in rel:
        return "holds a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        return "holds a control character"
    try:
        os.fsencode(rel)
    except UnicodeError:
        return "is not a valid file name"
    for part in rel.split("/"):
        if not part:
            return "has an empty part"
        if part in (".", ".."):
            return f"has a '{part}' part"
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            return f"has a part longer than {MAX_NAME_BYTES} bytes"
    return None


def check_relative(rel: str, *, what: str) -> str:
    """``rel`` itself, or a one-line UserError naming it (``what``: where it came from)."""
    problem = relative_problem(rel)
    if problem is not None:
        raise UserError(f"{what} {rel!r}: {problem}; allowed: {ALLOWED}")
    return rel


def is_inside(root: Path | str, path: Path | str) -> bool:
    """Whether ``path`` lies strictly inside ``root``, judged on the names alone (no symlink
    is followed; both are made absolute against the working directory)."""
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.abspath(path))
    return full != base and os.path.commonpath([base, full]) == base


def inside(root: Path, rel: str, *, what: str) -> Path:
    """``root / rel`` for a checked ``rel``; a UserError if it would leave ``root``."""
    check_relative(rel, what=what)
    path = root / rel
    if not is_inside(root, path):
        raise UserError(f"{what} {rel!r}: leaves {root}; allowed: {ALLOWED}")
    return path


def _parts_below(root: Path, path: Path) -> list[Path]:
    """``path`` and its parents down from (not including) ``root``, outermost first."""
    if not is_inside(root, path):
        raise UserError(f"{path}: not inside {root}")
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    out, current = [], Path(root)
    for part in rel.split(os.sep):
        current = current / part
        out.append(current)
    return out


def _real_dir(path: Path) -> bool | None:
    """True: a real directory; False: missing; None: anything else (a symlink, a file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return True if stat.S_ISDIR(st.st_mode) else None


def make_private_dirs(path: Path, *, below: Path | None = None) -> Path:
    """Create ``path`` and its missing parents, each mode 0700 whatever the umask (the mode is
    set after ``mkdir``, which the umask filters). With ``below``: ``path`` lies inside it and
    every part between them that exists is a real directory (a UserError otherwise)."""
    path = Path(path)
    if below is not None:
        chain = _parts_below(below, path)
    else:
        chain = [*reversed(Path(os.path.abspath(path)).parents), Path(os.path.abspath(path))]
    for part in chain:
        state = _real_dir(part)
        if state is None and below is not None:
            raise UserError(
                f"{part}: is a symlink or not a directory; rlgen works only in real "
                f"directories inside {below}"
            )
        if state is False:
            try:
                os.mkdir(part, 0o700)
            except FileExistsError:  # made meanwhile (by another worker of the same run)
                continue
            os.chmod(part, 0o700)
    if not os.path.isdir(path):
        raise UserError(f"{path}: exists and is not a directory")
    return path


def remove_tree(path: Path, *, below: Path) -> bool:
    """Delete the directory ``path`` inside ``below`` when it exists; False when it did not.

    Refused (UserError, nothing deleted) when ``path`` or any part between it and ``below`` is
    a symlink or not a directory. ``shutil.rmtree`` then unlinks symlinks it finds inside
    rather than following them."""
    for part in _parts_below(below, path):
        state = _real_dir(part)
        if state is False:
            return False
        if state is None:
            raise UserError(
                f"{path}: {part} is a symlink or not a directory; rlgen deletes only real "
                f"directories inside {below}"
            )
    shutil.rmtree(path)
    return True


def remove_entry(path: Path) -> None:
    """Remove whatever has the name ``path``: a symlink or a file is unlinked (never what it
    names), a real directory deleted with its contents; nothing there is fine."""
    state = _real_dir(path)
    if state is True:
        shutil.rmtree(path, ignore_errors=True)
    elif state is None:
        os.unlink(path)


def create_new(path: Path) -> BinaryIO:
    """``path`` opened for writing as a new private file (mode 0600). A stale file or a
    symlink of that name is unlinked first (the link itself, not its target); the open then
    refuses to follow a symlink or reuse a file (``O_EXCL | O_NOFOLLOW``)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def private_root(path: Path, *, what: str) -> Path:
    """``path`` created (mode 0700) if missing, then checked: a real directory (not a
    symlink), owned by this user, writable by nobody else. A UserError names it otherwise."""
    path = Path(os.path.abspath(path))
    if _real_dir(path) is False:
        make_private_dirs(path)
    st = os.lstat(path)
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symlink"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid != os.geteuid():
        problem = "belongs to another user"
    elif st.st_mode & 0o022:
        problem = "is writable by other users"
    if problem is not None:
        raise UserError(
            f"{what} {path}: {problem}; it must be a private directory of your own (mode 0700)"
        )
    return path
