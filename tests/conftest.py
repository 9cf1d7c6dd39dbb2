"""Shared fixtures (one real local Ray instance per test session, the CLI as users run it) and
the suite's tiers.

Every test has a tier. A test that starts Ray (the ``ray_local`` fixture, a run through the API,
a cluster) is marked ``ray``; one that starts a process (``run_cli``, a server, a linter) is
marked ``subprocess``; ``cluster`` and ``learning`` mark the slowest of those. Tests with none
of these marks are ``fast``: ``pytest -m fast`` runs them (unit tests and wiring that starts
nothing), the tier to run on every change. Marks come from the fixtures a test uses
(``TIER_FIXTURES``) or from its module's ``pytestmark``; a test that starts Ray or a process
without the mark fails, whatever tier runs it, so the fast tier stays fast.
"""

from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SLOW_TIERS = ("ray", "subprocess", "cluster", "learning")
# Fixtures that start something: a test using one is marked with its tier.
TIER_FIXTURES = {"ray_local": "ray", "s3_server": "subprocess"}
# Calls that start something, looked for in the source of a test and of its fixtures.
TIER_CALLS = {
    "ray": ("rlgen.train(", "rlgen.tune(", "ray.init(", "cluster.connect("),
    "subprocess": ("run_cli", "ray_cli", "subprocess.", "Popen("),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for tier in _tiers(item):
            item.add_marker(tier)
        if not any(item.get_closest_marker(tier) for tier in SLOW_TIERS):
            item.add_marker("fast")
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        from tests.scheduling import order_items

        order_items(items)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup``: the suite's own grouping and order (tests/scheduling.py)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.scheduling import make_scheduler

    return make_scheduler(config, log)


def _tiers(item: pytest.Item) -> set[str]:
    """The tiers a test's fixtures and calls put it in: the source of the test, of its
    fixtures, and of the test modules' functions these call, looked through for
    ``TIER_CALLS``."""
    names = set(getattr(item, "fixturenames", ()))
    tiers = {TIER_FIXTURES[n] for n in names if n in TIER_FIXTURES}
    functions = [getattr(item, "function", None)]
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    functions += [d.func for n in names for d in defs.get(n, ()) if n not in _PLAIN_FIXTURES]
    seen: set[object] = set()
    while functions:
        function = inspect.unwrap(functions.pop()) if functions[-1] is not None else None
        if function is None or function in seen or not _in_tests(function):
            continue
        seen.add(function)
        source = inspect.getsource(function)
        tiers.update(t for t, calls in TIER_CALLS.items() if any(c in source for c in calls))
        scope = getattr(function, "__globals__", {})
        functions += [scope[n] for n in _called_names(function.__code__) if callable(scope.get(n))]
    return tiers


def _in_tests(function: object) -> bool:
    """A function of the test suite (not this file's run_cli, ray_cli, ...: their callers are
    matched by name)."""
    module = getattr(function, "__module__", "") or ""
    return (
        module.startswith("tests.") and module != "tests.conftest" and inspect.isfunction(function)
    )


def _called_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _called_names(const)
    return names


# This file's fixtures that start nothing though their source names such calls.
_PLAIN_FIXTURES = {"rlgen_here", "ray_local", "_ray_session"}


_current: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current.append(item)
    try:
        return (yield)
    finally:
        _current.pop()


def _refuse_in_fast_tier(what: str, mark: str) -> None:
    item = _current[-1] if _current else None
    if item is not None and item.get_closest_marker("fast") is not None:
        raise RuntimeError(
            f"{item.nodeid} {what} but is in the fast tier: mark it "
            f"@pytest.mark.{mark} (or use the fixture that does: {sorted(TIER_FIXTURES)})"
        )


def pytest_configure(config):
    """Guard the fast tier: starting Ray or a process from a test marked ``fast`` raises. And
    give the session (each xdist worker its own) a private mirror root for runs stored at
    URIs, so that parallel sessions never share local copies and the user's cache is left
    alone."""
    import tempfile

    import ray
    import ray._private.worker

    config._rlgen_mirror = tempfile.mkdtemp(prefix="rlgen-test-mirror-")
    os.environ["RLGEN_MIRROR_DIR"] = config._rlgen_mirror

    real_init = ray.init
    real_popen_init = subprocess.Popen.__init__

    def init(*args, **kwargs):
        _refuse_in_fast_tier("starts Ray", "ray")
        return real_init(*args, **kwargs)

    def popen_init(self, *args, **kwargs):
        _refuse_in_fast_tier(f"starts a process ({str(args[0] if args else '')[:60]})",
                             "subprocess")  # fmt: skip
        return real_popen_init(self, *args, **kwargs)

    ray.init = ray._private.worker.init = init
    subprocess.Popen.__init__ = popen_init


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(config._rlgen_mirror, ignore_errors=True)


@pytest.fixture(scope="session")
def _ray_session():
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def ray_local(_ray_session):
    """The test session's local Ray instance (each xdist worker's own), started on first use
    and again after a test that shut it down; shared by every test that uses it, where
    isolation is not what the test is about."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
        )
    return ray


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``rlgen ARGS`` in a fresh process, exactly as a user would (``env``: extra
    environment variables)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "rlgen.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def rlgen_here(capfd, monkeypatch):
    """``rlgen ARGS`` through ``rlgen_cli.main`` in this process, for bad input: its checks run
    before anything starts, so this is the same path as ``run_cli`` without a fresh
    interpreter's seconds of imports per case (a few cases per command still run through
    ``run_cli``). stdout and stderr are captured at the file descriptors, so a line from a
    library's logger or from C code counts too. Returns what ``run_cli`` returns; refused input
    must not have started Ray."""
    import ray

    import rlgen_cli

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd or ROOT)
        had_ray = ray.is_initialized()
        capfd.readouterr()
        try:
            code = rlgen_cli.main(list(args))
        except SystemExit as exc:  # argparse's own errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
        assert had_ray or not ray.is_initialized(), f"rlgen {args} started Ray"
        return subprocess.CompletedProcess(["rlgen", *args], code, out, err)

    return run


VENV_BIN = Path(sys.executable).parent


def ray_env(**extra: str) -> dict[str, str]:
    """This environment without any RAY_* setting of the caller's, the venv's ``ray`` and
    ``rlgen`` first on PATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def ray_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """Ray's own command line (``ray start``, ``ray up``, ``ray job submit``, ...) from the
    repository root."""
    return subprocess.run(
        [str(VENV_BIN / "ray"), *args], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=timeout,
    )  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


S3_BUCKET = "rlgen-test"


# A fresh secret key per test session, so a test can show it never reaches a file or output.
S3_SECRET = f"rlgen-secret-{os.urandom(12).hex()}"


def files_holding(root: Path, *needles: str) -> list[Path]:
    """Files under ``root`` whose bytes contain any of ``needles`` (secrets that must not be
    there)."""
    found = []
    for path in Path(root).rglob("*"):
        if path.is_file() and any(n.encode() in path.read_bytes() for n in needles):
            found.append(path)
    return found


def s3_objects(env: dict, uri: str) -> dict[str, bytes]:
    """Relative path -> bytes of every object under ``uri`` on the test server."""
    fs = _s3(env["AWS_ENDPOINT_URL_S3"])
    root = uri.removeprefix("s3://").rstrip("/")
    out = {}
    for rel in s3_files(env, uri):
        with fs.open_input_stream(f"{root}/{rel}") as f:
            out[rel] = f.read()
    return out


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on loopback (moto's server mode) with one bucket; yields the environment
    variables through which pyarrow (and so rlgen and Ray Train) reach it."""
    import signal
    import time
    import urllib.error
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the S3 test server did not start") from None
                time.sleep(0.3)
        env = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "rlgen-test",
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        _s3(endpoint, allow_bucket_creation=True).create_dir(S3_BUCKET)
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _s3(endpoint: str, **options: bool):
    """A pyarrow client of the test S3 server."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", access_key="rlgen-test",
        secret_key=S3_SECRET, region="us-east-1", **options,
    )  # fmt: skip


def s3_files(env: dict, uri: str) -> dict[str, int]:
    """Relative path -> size of every object under ``uri`` on the test server."""
    import pyarrow.fs as pafs

    fs = _s3(env["AWS_ENDPOINT_URL_S3"])
    root = uri.removeprefix("s3://").rstrip("/")
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except FileNotFoundError:
        return {}
    return {i.path[len(root) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}
