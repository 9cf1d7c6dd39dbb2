"""Paths under hostile neighbours (docs/security.md: files are hostile data, the path rules).

Object keys that would leave the local copy are refused before anything is written (a real S3
API on loopback holds them); a symlink planted at the mirror root, on a run's mirror path or
inside a run directory is never followed (its target stays as it was); the default mirror root
is private per user. Temporary names, partial checkpoints and directory modes under any umask
are in ``test_hostile_modes.py``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runkit import paths, storage
from runkit.errors import UserError
from tests.conftest import S3_BUCKET, s3_objects

# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def s3(s3_server, tmp_path, monkeypatch):
    """The session's S3 server in this process's environment, the mirror in ``tmp/mirror``."""
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(storage.MIRROR_ENV, str(tmp_path / "mirror"))
    return s3_server


def _put_raw(env: dict, key: str, body: bytes = b"x") -> None:
    """Store an object under exactly ``key`` (pyarrow refuses to write some hostile keys)."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    client.put_object(Bucket=S3_BUCKET, Key=key, Body=body)


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (files with their bytes, folders and links as None)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink() else None
        for p in root.rglob("*")
    }


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- object keys ----------------------------------------------------------------------------

# (case, the hostile key below the run's prefix); the local copy is 6 levels below tmp_path
# (mirror/fetched|runs/s3/<bucket>/keys/<case>), so 6 ".." reach tmp_path/sentinel.
UP = "../" * 6
HOSTILE_KEYS = [
    ("dotdot", f"{UP}sentinel/sub/f"),
    ("dotdot inside", f"ckpt/x/../../{UP}sentinel/sub/f"),
    ("dotdot last", "ckpt/.."),
    ("empty part", "ckpt//f"),
    ("absolute", "/sentinel/f"),
    ("dot part", "./f"),
    ("dot inside", "ckpt/./f"),
    ("backslash", "ckpt\\..\\..\\f"),
    ("long name", "ckpt/" + "n" * 300),
    ("file and folder", "run.json/f"),
]


@pytest.mark.parametrize("entry", ["fetch", "resume"])
@pytest.mark.parametrize(("case", "key"), HOSTILE_KEYS, ids=[c for c, _ in HOSTILE_KEYS])
def test_hostile_keys_are_refused_before_anything_is_written(s3, tmp_path, case, key, entry):
    prefix = f"keys/{case.replace(' ', '-')}"
    uri = f"s3://{S3_BUCKET}/{prefix}"
    _put_raw(s3, f"{prefix}/run.json", b"{}")
    _put_raw(s3, f"{prefix}/{key}", b"planted")
    (tmp_path / "sentinel").mkdir()
    local = storage.mirror_dir(uri, purpose="fetched" if entry == "fetch" else "runs")
    local.mkdir(parents=True)
    (local / "earlier.txt").write_text("an earlier copy")
    before = _tree(tmp_path / "mirror")

    def never(local: Path, sync: Callable[[bool], None]) -> None:
        raise AssertionError("the run started")

    with pytest.raises(UserError) as err:
        if entry == "fetch":
            storage.fetch(uri)
        else:
            storage.run_at_uri(uri, resume=True, run=never)
    message = str(err.value)
    assert "\n" not in message and repr(key) in message
    assert _tree(tmp_path / "sentinel") == {}
    assert _tree(tmp_path / "mirror") == before  # not even the earlier copy was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "sentinel"]


def test_plain_keys_are_copied(s3, tmp_path):
    """The key rules leave ordinary runs alone: dots inside names, deep folders, spaces."""
    prefix = "keys/plain"
    keys = ["run.json", "checkpoints/iter_000001/.hidden", "a..b/c d.e", "x/y/z/w.pt"]
    for key in keys:
        _put_raw(s3, f"{prefix}/{key}", key.encode())
    local = storage.fetch(f"s3://{S3_BUCKET}/{prefix}")
    assert {k: v for k, v in _tree(local).items() if v is not None} == {k: k.encode() for k in keys}
    assert _mode(local) == 0o700 and _mode(local / "x" / "y") == 0o700


BAD_RELATIVE = [
    ("", "is empty"),
    ("/etc/passwd", "is absolute"),
    ("a//b", "has an empty part"),
    ("a/", "has an empty part"),
    ("..", "has a '..' part"),
    ("a/../b", "has a '..' part"),
    ("./a", "has a '.' part"),
    ("a\\b", "holds a backslash"),
    ("a\x00b", "holds a control character"),
    ("a\nb", "holds a control character"),
    ("a\x7fb", "holds a control character"),
    ("a\ud800", "is not a valid file name"),
    ("n" * 256, "longer than 255 bytes"),
]


@pytest.mark.parametrize(("rel", "why"), BAD_RELATIVE, ids=[repr(r)[:20] for r, _ in BAD_RELATIVE])
def test_check_relative_refuses(rel, why):
    with pytest.raises(UserError, match=why) as err:
        paths.check_relative(rel, what="object key")
    assert "\n" not in str(err.value) and repr(rel) in str(err.value)


@pytest.mark.parametrize("rel", ["a", "a/b.c", "..a", "a..", ".hidden/x", "n" * 255, "é/ü"])
def test_check_relative_accepts(rel):
    assert paths.check_relative(rel, what="key") == rel


@pytest.mark.parametrize("uri", ["s3://bucket/../x", "s3://bucket/a//b", "gs://b/./c"])
def test_uri_paths_that_would_leave_the_mirror_are_refused(uri, tmp_path, monkeypatch):
    monkeypatch.setenv(storage.MIRROR_ENV, str(tmp_path / "mirror"))
    with pytest.raises(UserError, match="its path"):
        storage.mirror_dir(uri)
    assert not (tmp_path / "mirror").exists()


# --- the mirror root and a run's mirror path --------------------------------------------------


def _link_to_victim(tmp: Path) -> Path:
    victim = tmp / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    link = tmp / "root-link"
    link.symlink_to(victim, target_is_directory=True)
    return link


MIRROR_ROOTS = [
    ("symlink", _link_to_victim, "is a symlink"),
    ("group-writable", lambda t: _made(t / "g", 0o770), "writable by other users"),
    ("world-writable", lambda t: _made(t / "w", 0o777), "writable by other users"),
    ("sticky /tmp-like", lambda t: _made(t / "s", 0o1777), "writable by other users"),
    ("a file", lambda t: _file(t / "f"), "is not a directory"),
]


def _made(path: Path, mode: int) -> Path:
    path.mkdir()
    os.chmod(path, mode)
    return path


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


@pytest.mark.parametrize(("case", "make", "why"), MIRROR_ROOTS, ids=[c for c, *_ in MIRROR_ROOTS])
def test_an_unsafe_mirror_root_is_refused(tmp_path, monkeypatch, case, make, why):
    root = make(tmp_path)
    monkeypatch.setenv(storage.MIRROR_ENV, str(root))
    before = _tree(tmp_path)
    with pytest.raises(UserError, match=why) as err:
        storage.mirror_dir("s3://bucket/run")
    assert "\n" not in str(err.value) and str(root) in str(err.value)
    assert _tree(tmp_path) == before


def test_a_mirror_root_of_another_user_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.MIRROR_ENV, str(_made(tmp_path / "theirs", 0o700)))
    monkeypatch.setattr(os, "geteuid", lambda: os.lstat(tmp_path).st_uid + 1)
    with pytest.raises(UserError, match="belongs to another user"):
        storage.mirror_root()


@pytest.mark.parametrize(
    ("env", "where"),
    [
        ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "xdg/rlgen/mirror"),
        ({"XDG_CACHE_HOME": "relative/ignored", "HOME": "{tmp}/home"}, "home/.cache/rlgen/mirror"),
        ({"HOME": "{tmp}/home"}, "home/.cache/rlgen/mirror"),
    ],
)
def test_default_mirror_root_is_private_per_user(tmp_path, monkeypatch, open_umask, env, where):
    monkeypatch.delenv(storage.MIRROR_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    root = storage.mirror_root()
    assert root == tmp_path / where
    made = [root, *list(root.parents)[: where.count("/")]]
    assert {str(p): _mode(p) for p in made} == {str(p): 0o700 for p in made}
    assert storage.mirror_dir("s3://bucket/run") == root / "runs" / "s3" / "bucket" / "run"


# (case, the part of the mirror path made a link, entry point)
PLANTED = [
    ("run path, fresh run", "runs/s3/{b}/planted/{name}", "fresh"),
    ("run path, resume", "runs/s3/{b}/planted/{name}", "resume"),
    ("run path, fetch", "fetched/s3/{b}/planted/{name}", "fetch"),
    ("parent, fresh run", "runs/s3", "fresh"),
    ("parent, resume", "runs/s3/{b}", "resume"),
    ("parent, fetch", "fetched", "fetch"),
]


@pytest.mark.parametrize(("case", "where", "entry"), PLANTED, ids=[c for c, *_ in PLANTED])
def test_a_symlink_on_the_mirror_path_is_refused(s3, tmp_path, case, where, entry):
    name = case.replace(" ", "-").replace(",", "")
    uri = f"s3://{S3_BUCKET}/planted/{name}"
    if entry != "fresh":
        _put_raw(s3, f"planted/{name}/run.json", b"{}")
    local = storage.mirror_dir(uri, purpose="fetched" if entry == "fetch" else "runs")
    link = storage.mirror_root() / where.format(b=S3_BUCKET, name=name)
    link.parent.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim"
    (victim / local.relative_to(link)).mkdir(parents=True)  # what the link would lead to
    (victim / local.relative_to(link) / "precious").write_text("keep")
    link.symlink_to(victim, target_is_directory=True)
    before = _tree(victim)
    started = []
    with pytest.raises(UserError, match="symlink") as err:
        if entry == "fetch":
            storage.fetch(uri)
        else:
            storage.run_at_uri(uri, resume=entry == "resume", run=lambda *a: started.append(a))
    assert "\n" not in str(err.value)
    assert _tree(victim) == before and not started
    assert link.is_symlink()


def test_remove_tree_refuses_outside_its_root_and_through_links(tmp_path):
    (tmp_path / "root" / "real" / "d").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="not inside"):
        paths.remove_tree(tmp_path / "elsewhere", below=tmp_path / "root")
    with pytest.raises(UserError, match="not inside"):
        paths.remove_tree(tmp_path / "root" / ".." / "elsewhere", below=tmp_path / "root")
    with pytest.raises(UserError, match="symlink"):
        paths.remove_tree(tmp_path / "root" / "link", below=tmp_path / "root")
    assert (tmp_path / "elsewhere").is_dir()
    assert paths.remove_tree(tmp_path / "root" / "real", below=tmp_path / "root")
    assert not paths.remove_tree(tmp_path / "root" / "real", below=tmp_path / "root")


# --- what the mirror copies up ----------------------------------------------------------------


def test_push_skips_symlinks_and_never_enters_linked_folders(s3, tmp_path):
    secret = f"secret-{os.urandom(8).hex()}"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text(secret)
    local = tmp_path / "run"
    (local / "checkpoints").mkdir(parents=True)
    (local / "result.json").write_text("{}")
    (local / "notes.txt").symlink_to(outside / "id_rsa")
    (local / "checkpoints" / "linked").symlink_to(outside, target_is_directory=True)
    (local / "dangling").symlink_to(tmp_path / "nothing")
    uri = f"s3://{S3_BUCKET}/push/links"
    assert storage.Mirror(uri, local).push() == 1
    stored = s3_objects(s3, uri)
    assert stored == {"result.json": b"{}"}
    assert not [k for k, v in stored.items() if secret.encode() in v]
