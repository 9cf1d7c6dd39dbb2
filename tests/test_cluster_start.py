"""Tier 2: how ``runkit.cluster.connect`` starts the embedded Ray instance: a start Ray gave
up on (its fixed wait for the raylet on a machine whose cores are all busy) is cleaned up and
made once more, any other failure is not retried, and the modules a job names are imported
on a second thread while Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid

import pytest

from runkit import cluster
from tests.faultkit import alive


@pytest.fixture
def ray_stopped(ray_local, monkeypatch):
    """No Ray instance in this process while the test runs (the shared one starts again for the
    next test that asks for it); ``RAY_ADDRESS`` unset: a local start."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_local.shutdown()
    yield ray_local
    ray_local.shutdown()


def test_a_start_ray_gave_up_on_is_cleaned_up_and_made_again(ray_stopped, monkeypatch, capsys):
    """The first ``ray.init`` leaves a process behind (as a real timed-out start leaves its GCS
    and raylet) and raises Ray's start-up timeout: the leftover is killed, Ray starts on the
    second try, and the user is told."""
    ray = ray_stopped
    real_init, calls, leftovers = ray.init, [], []

    def init(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            leftovers.append(
                subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            )
            raise Exception(f"{cluster.STARTUP_TIMEOUT}. This could happen because ...")
        return real_init(**kwargs)

    monkeypatch.setattr(ray, "init", init)
    cluster.connect()
    assert len(calls) == 2 and calls[0] == calls[1]
    assert ray.is_initialized()
    assert not alive(leftovers[0].pid)
    assert "Ray did not start in time" in capsys.readouterr().err


def _init_failing_with(error: Exception, ray, monkeypatch) -> list[dict]:
    """``ray.init`` replaced by one that raises ``error``; the list its calls are added to."""
    calls: list[dict] = []

    def init(**kwargs):
        calls.append(kwargs)
        raise error

    monkeypatch.setattr(ray, "init", init)
    return calls


def test_a_start_ray_gives_up_on_every_time_is_made_a_fixed_number_of_times(
    ray_stopped, monkeypatch
):
    timeout = Exception(f"{cluster.STARTUP_TIMEOUT}. This could happen because ...")
    calls = _init_failing_with(timeout, ray_stopped, monkeypatch)
    with pytest.raises(Exception, match="timed out during startup"):
        cluster.connect()
    assert len(calls) == cluster.START_ATTEMPTS == 3


def test_other_start_failures_are_not_retried(ray_stopped, monkeypatch):
    error = RuntimeError("object store memory is too small")
    calls = _init_failing_with(error, ray_stopped, monkeypatch)
    with pytest.raises(RuntimeError, match="too small"):
        cluster.connect()
    assert len(calls) == 1


def test_a_timeout_joining_a_cluster_is_not_retried(ray_stopped, monkeypatch):
    """Joining (``RAY_ADDRESS`` set) starts no process here: nothing to clean up or retry."""
    calls = _init_failing_with(Exception(f"{cluster.STARTUP_TIMEOUT}."), ray_stopped, monkeypatch)
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    with pytest.raises(Exception, match="timed out during startup"):
        cluster.connect()
    assert len(calls) == 1


def test_preloaded_modules_are_imported_on_a_second_thread_while_ray_starts(
    ray_stopped, tmp_path, monkeypatch
):
    """A name in ``preload`` is imported before ``connect`` returns, not on the main thread;
    one that cannot be imported is left for the job's own import to report."""
    name = f"probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "import threading\nTHREAD = threading.current_thread()\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cluster.connect(preload=("no_such_module_for_rlgen", name))
    assert ray_stopped.is_initialized()
    probe = sys.modules[name]
    assert probe.THREAD is not threading.main_thread()


def _processes_marked(mark: str) -> list[int]:
    """Running processes whose environment holds ``mark`` (Ray's processes inherit the
    command's environment; several rename themselves, so their command line says nothing)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if mark.encode() in f.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_the_command_leaves_no_ray_process_of_the_instance_it_started(tmp_path):
    """``rlgen`` ends without Ray's graceful stop (``cluster.leave_before_exit``): the GCS,
    raylet, workers and agents of the instance it started end with it (left to the
    parent-death signal, the agents outlived the command by a minute)."""
    import time

    from tests.conftest import run_cli

    mark = f"RLGEN_TEST_MARK={uuid.uuid4().hex}"
    done = run_cli(
        "train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "200",
        "--video-frames", "0", "--output", str(tmp_path / "run"),
        env=dict([mark.split("=")]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "result.json").is_file()
    deadline = time.monotonic() + 3
    while _processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_marked(mark) == []


def _ray_processes_here() -> dict[str, int]:
    """How many of this process's descendants run each of Ray's Python services (by the
    script in their command line), and how many Python workers the instance's raylet runs
    (not those of an instance stopped earlier in this process, which may still be ending)."""
    from ray._private import worker

    scripts = {
        "API server": "dashboard/dashboard.py",
        "autoscaler monitor": "autoscaler/_private/monitor.py",
        "log monitor": "_private/log_monitor.py",
        "raylet": "raylet/raylet",
    }
    found = dict.fromkeys([*scripts, "Python worker"], 0)
    parents = cluster._parents()
    lines = {}
    for pid in cluster._descendants(parents):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                lines[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    session = worker._global_node.get_session_dir_path()
    raylets = {pid for pid, line in lines.items() if "raylet/raylet" in line and session in line}
    for pid, line in lines.items():
        for what, script in scripts.items():
            found[what] += script in line
        # A worker: default_worker.py, titled ray::IDLE or ray::<task> once it runs (the
        # raylet's agents are titled ray::<name>Agent).
        program = line.split(" ", 1)[0]
        is_worker = "default_worker.py" in line or (
            program.startswith("ray::") and not program.endswith("Agent")
        )
        found["Python worker"] += parents.get(pid) in raylets and is_worker
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_an_embedded_start_runs_only_what_the_job_uses(ray_stopped):
    """A job's instance runs no API server, autoscaler monitor or log monitor; a Tune
    experiment of Train jobs afterwards in the same process gets the API server, and with it
    Ray's state API fails at once, as Train's placement-group cleaner expects (without it, the
    call retries for 40 s)."""
    import time

    from ray.util.state import get_actor
    from ray.util.state.exception import RayStateApiException

    ray = ray_stopped
    cluster.connect()
    assert _ray_processes_here() == {
        "API server": 0, "autoscaler monitor": 0, "log monitor": 0, "raylet": 1,
        "Python worker": 0,  # none before a task asks for one
    }  # fmt: skip
    assert ray.get(ray.remote(lambda: 7).remote()) == 7
    cluster.connect(api_server=True)
    assert _ray_processes_here()["API server"] == 1
    start = time.monotonic()
    with pytest.raises(RayStateApiException):
        get_actor("0" * 32, address=ray.get_runtime_context().gcs_address, timeout=5)
    assert time.monotonic() - start < 5
