"""No secret from the environment reaches a file: an RL run, a generative run and a 2-trial Tune
experiment each run through the CLI with fake credentials in the environment and Ray's session
directory isolated (``RAY_TMPDIR``); then every file under that directory (Ray's logs and
runtime-env records) and under the run or experiment directory is read byte for byte, and none
may hold any of the values. Tune used to copy ``AWS_*`` into each trial's runtime env, which Ray
logs in plain text (``runtime_env_agent.log``)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from runkit.secrets import is_secret_name, without_secrets
from tests.conftest import run_cli
from tests.test_vae_job import _small_dataset


def _fake_credentials() -> dict[str, str]:
    """Distinctive values, fresh per test, that must appear in no file."""
    tag = secrets.token_hex(8)
    return {
        "AWS_ACCESS_KEY_ID": f"AKIARLGEN{tag.upper()}",
        "AWS_SECRET_ACCESS_KEY": f"rlgen-aws-secret-{tag}",
        "AWS_SESSION_TOKEN": f"rlgen-aws-session-{tag}",
        "GOOGLE_APPLICATION_CREDENTIALS": f"/nonexistent/rlgen-gcp-{tag}.json",
        "RLGEN_TEST_API_TOKEN": f"rlgen-api-token-{tag}",
    }


def _leaks(roots: list[Path], values: dict[str, str]) -> list[str]:
    """'PATH: NAME ...context...' for every file under ``roots`` whose bytes hold a value."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_symlink() or not path.is_file():
                continue  # sockets, pipes, links
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for name, value in values.items():
                at = data.find(value.encode())
                if at >= 0:
                    context = data[max(0, at - 80) : at + len(value) + 20].decode(errors="replace")
                    found.append(f"{path}: {name} in ...{context}...")
    return found


def _ray_processes(session_root: Path) -> list[int]:
    """Processes whose command line names ``session_root`` (the embedded instance's GCS,
    raylet, dashboard, ...)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(session_root).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def _stop_leftovers(session_root: Path, wait_s: float = 20) -> list[int]:
    """Wait for the run's Ray processes to end (the CLI shuts Ray down at exit); kill any that
    remain by id and return their ids."""
    deadline = time.monotonic() + wait_s
    while (left := _ray_processes(session_root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


CASES = [
    pytest.param(
        ["train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "2000"], id="rl"
    ),
    pytest.param(
        ["train", "vae", "--dataset", "{data}", "--epochs", "1", "--set", "grid_n=4"],
        id="generative",
    ),
    pytest.param(
        ["tune", "reinforce_cartpole", "--num-samples", "2", "--max-env-steps", "1000"],
        id="tune",
    ),
]


@pytest.mark.parametrize("args", CASES)
def test_no_secret_reaches_ray_session_or_run_dir(args, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # the embedded instance, in RAY_TMPDIR
    if "{data}" in args:
        data = _small_dataset(tmp_path / "digits", n_train=64, n_test=16)
        args = [str(data) if a == "{data}" else a for a in args]
    values = _fake_credentials()
    session_root = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # Ray's socket paths are short
    out = tmp_path / "out"
    try:
        proc = run_cli(*args, "--output", str(out), env={**values, "RAY_TMPDIR": str(session_root)})
        left = _stop_leftovers(session_root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not left, f"Ray processes still running after the CLI exited: {left}"
        logs = list(session_root.glob("ray/session_*/logs/*"))
        assert len(logs) > 10, "Ray's session directory is not where RAY_TMPDIR put it"
        assert len([p for p in out.rglob("*") if p.is_file()]) > 3
        leaks = _leaks([session_root, out], values)
        assert not leaks, "secrets written to files:\n" + "\n".join(leaks)
        printed = proc.stdout + proc.stderr
        assert not [name for name, value in values.items() if value in printed]
    finally:
        _stop_leftovers(session_root, wait_s=0)
        shutil.rmtree(session_root, ignore_errors=True)


@pytest.mark.parametrize(
    "name, secret",
    [
        ("AWS_ACCESS_KEY_ID", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_SESSION_TOKEN", True),
        ("AWS_SECURITY_TOKEN", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("HF_TOKEN", True),
        ("WANDB_API_KEY", True),
        ("DB_PASSWORD", True),
        ("AWS_DEFAULT_REGION", False),
        ("AWS_ENDPOINT_URL_S3", False),
        ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", False),
        ("PL_DISABLE_FORK", False),
    ],
)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret
    assert (name in without_secrets({name: "x", "OTHER": "y"})) is not secret
