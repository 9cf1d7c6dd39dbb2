"""The fence around Ray core's start (``runkit/ray_compat.py``): the Node methods a lean start
replaces are still the ones Ray's start calls, with the signatures used; they are back after
the start, also when it fails; another Ray series is refused. What an embedded instance runs
then is tested on a real start in ``tests/test_cluster_start.py``."""

from __future__ import annotations

import inspect
import os
import runpy

import pytest
import ray
from ray._private import node as ray_node
from ray._private import worker as ray_worker

from runkit import ray_compat
from tests.conftest import ROOT


def test_another_ray_series_is_refused(monkeypatch):
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    with pytest.raises(ImportError, match="Ray 2.60.x; this is Ray 2.61.0"):
        runpy.run_path(str(ROOT / "runkit" / "ray_compat.py"))


@pytest.mark.parametrize(
    "name, caller",
    [
        ("start_monitor", "start_head_processes"),
        ("start_api_server", "start_head_processes"),
        ("start_log_monitor", "start_ray_processes"),
    ],
)
def test_rays_start_calls_each_replaced_method(name, caller):
    """Replacing the method skips the process only while Ray's start reaches it through
    ``self``: a start that called a module function instead would start it anyway."""
    assert name in ray_compat.SKIPPED.values()
    assert f"self.{name}(" in inspect.getsource(getattr(ray_node.Node, caller))


def test_the_replaced_methods_keep_their_signatures():
    def params(name):
        return list(inspect.signature(getattr(ray_node.Node, name)).parameters)

    assert params("start_monitor") == ["self"]
    assert params("start_log_monitor") == ["self"]
    assert params("start_api_server") == ["self", "include_dashboard", "raise_on_failure"]
    made = inspect.getsource(ray_node.Node.__init__)
    assert "self.head = head" in made and "self.all_processes: dict = {}" in made
    started = inspect.getsource(ray_node.Node.start_api_server)
    assert "self.all_processes[ray_constants.PROCESS_TYPE_DASHBOARD]" in started
    assert hasattr(ray_worker, "_global_node")


@pytest.mark.parametrize("api_server", [False, True])
def test_the_methods_are_replaced_only_inside_and_back_after_a_failure(api_server):
    before = {name: ray_node.Node.__dict__[name] for name in ray_compat.SKIPPED.values()}
    with pytest.raises(RuntimeError, match="start failed"):
        with ray_compat.lean_local_start(api_server=api_server):
            inside = {name: ray_node.Node.__dict__[name] for name in before}
            raise RuntimeError("start failed")
    assert {name: ray_node.Node.__dict__[name] for name in before} == before
    replaced = {name for name in before if inside[name] is not before[name]}
    assert replaced == ({"start_monitor", "start_log_monitor"} if api_server else set(before))


def test_the_raylet_still_reads_the_prestart_setting():
    """Ray's settings reach the raylet by name; one it no longer knows would be ignored."""
    import pathlib

    raylet = pathlib.Path(ray.__file__).parent / "core" / "src" / "ray" / "raylet" / "raylet"
    assert ray_compat.PRESTART_ENV.removeprefix("RAY_").encode() in raylet.read_bytes()


@pytest.mark.parametrize("users", [None, "1"])
def test_prestart_is_off_only_inside_and_a_users_setting_is_kept(monkeypatch, users):
    if users is None:
        monkeypatch.delenv(ray_compat.PRESTART_ENV, raising=False)
    else:
        monkeypatch.setenv(ray_compat.PRESTART_ENV, users)
    with pytest.raises(RuntimeError, match="start failed"):
        with ray_compat.lean_local_start(api_server=False):
            inside = os.environ.get(ray_compat.PRESTART_ENV)
            raise RuntimeError("start failed")
    assert inside == (users or "0")
    assert os.environ.get(ray_compat.PRESTART_ENV) == users


def test_rays_messages_to_the_driver_go_to_stderr(monkeypatch, capsys):
    """A raylet's message to the driver ("8 PYTHON worker processes have been started", once
    printed into the middle of ``rlgen train``'s JSON result) is printed by Ray's listener
    thread through ``print_to_stdstream``, called by its module-level name and going to stdout;
    after ``messages_to_stderr`` it goes to stderr, and a second call wraps nothing twice."""
    listener = inspect.getsource(ray_worker.listen_error_messages)
    assert "print_to_stdstream(" in listener and '"is_err": False' in listener
    assert list(inspect.signature(ray_worker.print_to_stdstream).parameters) == [
        "data", "ignore_prefix",
    ]  # fmt: skip
    # Ray's own function, also where a start earlier in this process has replaced it already
    monkeypatch.setattr(
        ray_worker, "print_to_stdstream", inspect.unwrap(ray_worker.print_to_stdstream)
    )
    message = {"lines": ["WARNING: 8 PYTHON worker processes"], "pid": "raylet", "is_err": False}
    ray_worker.print_to_stdstream(message, ignore_prefix=False)
    assert "8 PYTHON" in capsys.readouterr().out  # Ray's own: stdout
    ray_compat.messages_to_stderr()
    wrapped = ray_worker.print_to_stdstream
    ray_compat.messages_to_stderr()
    assert ray_worker.print_to_stdstream is wrapped
    ray_worker.print_to_stdstream(message, ignore_prefix=False)
    printed = capsys.readouterr()
    assert "8 PYTHON" in printed.err and printed.out == ""
