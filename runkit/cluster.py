"""Connecting to Ray and the GPU policy, the same for every job.

``connect()`` joins the cluster named by ``RAY_ADDRESS`` (or the head started on this node with
``ray start --head``) and otherwise starts an embedded local instance. GPU use is automatic:
a job uses GPUs when the cluster has enough of them, unless the user says otherwise.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from runkit import secrets
from runkit.errors import UserError, first_line

GPU_CHOICES = ("auto", "yes", "no")


def connect(preload: Sequence[str] = (), *, api_server: bool = False) -> None:
    """Join the running cluster (``RAY_ADDRESS``, or the started head), else start one here;
    say which on stderr (its GCS address, nodes, CPUs and GPUs). Before any job makes its
    actors, secrets in the environment are kept out of the runtime envs Ray logs.

    An instance started here runs only the processes a run uses (``runkit.ray_compat``); its
    API server only with ``api_server``, which Tune experiments of Ray Train jobs need (an
    instance this process started without it gets it now).

    ``preload``: modules the job imports next, imported on a second thread while Ray starts
    (most of ``ray.init`` is waiting for Ray's own processes). Ray starts on this thread: the
    processes it starts end with the thread that started them."""
    import ray

    from runkit import ray_compat

    secrets.keep_out_of_runtime_envs()
    if ray.is_initialized():
        if api_server:
            ray_compat.start_api_server()
        return
    check_address()
    ray_compat.messages_to_stderr()  # before ray.init starts the thread that prints them
    loader = threading.Thread(target=_import_quietly, args=(tuple(preload),), daemon=True)
    loader.start()
    try:
        with ray_compat.lean_local_start(api_server=api_server):
            _init(ray)
    finally:
        loader.join()
    print(
        f"rlgen: Ray cluster at {ray.get_runtime_context().gcs_address}: {alive_nodes()} node(s), "
        f"{cluster_cpus():g} CPUs, {cluster_gpus():g} GPUs",
        file=sys.stderr,
    )


def _import_quietly(names: tuple[str, ...]) -> None:
    """Import each module now; one that fails raises again where the job imports it."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the job's own import reports it
            continue


STARTUP_TIMEOUT = "The current node timed out during startup"
# How many times a local start is made in all: a start Ray gave up on twice in a row was seen
# once in the suite, with both cores busy (its 30 s wait for the raylet is fixed in Ray).
START_ATTEMPTS = 3


def _init(ray: Any) -> None:
    """``ray.init``; a local start that Ray gave up on (its fixed 30 s wait for the raylet,
    seen on a machine whose cores are all busy) is cleaned up and made again, up to
    ``START_ATTEMPTS`` starts in all."""
    global _started_here
    local = not os.environ.get("RAY_ADDRESS", "").strip()
    before = _children()
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            _init_once(ray)
            break
        except Exception as exc:
            if not (local and str(exc).startswith(STARTUP_TIMEOUT)) or attempt == START_ATTEMPTS:
                raise
            print(
                f"rlgen: Ray did not start in time ({first_line(exc)}); starting it again",
                file=sys.stderr,
            )
            _kill(_children() - before)
            ray.shutdown()
    _started_here = bool(_children() - before)  # Ray's GCS and raylet are this process's


_started_here = False


def leave_before_exit() -> None:
    """At the end of the ``rlgen`` command: disconnect from a cluster this process joined; an
    instance it started is left running for ``end_started_instance``, without Ray's graceful
    stop, which waits on each of its processes in turn."""
    import atexit

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    if _started_here:
        atexit.unregister(ray.shutdown)
    else:
        ray.shutdown()


def end_started_instance() -> None:
    """The last step of the ``rlgen`` command, right before the process ends, for a Ray
    instance it started: kill the processes the GCS and raylet started (workers, Ray's agents),
    not waiting for them. Left alone, the agents outlive the command by a minute, using CPU.
    The GCS and raylet themselves end with this process (the kernel's parent-death signal Ray
    sets on them); killed while this process runs, its Ray client would notice and end the
    process with its own exit status."""
    if not _started_here:
        return
    parents = _parents()  # one reading of the process table for both sets
    for pid in _descendants(parents) - _children(parents):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _parents() -> dict[int, int]:
    """Each process's parent, from /proc (empty where there is none)."""
    parents = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        if len(fields) > 1 and fields[1].isdigit():
            parents[int(entry.name)] = int(fields[1])
    return parents


def _children(parents: dict[int, int] | None = None) -> set[int]:
    """This process's child processes (``parents``: a reading of ``_parents()``)."""
    me = os.getpid()
    return {pid for pid, parent in (parents or _parents()).items() if parent == me}


def _descendants(parents: dict[int, int]) -> set[int]:
    """This process's children, their children, and so on."""
    frontier = {os.getpid()}
    found: set[int] = set()
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _kill(pids: set[int]) -> None:
    """SIGKILL each process (the Ray processes a failed start left: Ray keeps no handle) and
    reap it."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _init_once(ray: Any) -> None:
    where = os.environ.get("RAY_ADDRESS") or "the Ray head started on this node"
    try:
        # An instance started here lives as long as this run: its dashboard (seconds to start)
        # would be gone before anyone looked. A head started with `ray start --head` or a
        # cluster keeps its own dashboard (the option does not apply when joining).
        ray.init(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    except ConnectionError as exc:
        raise UserError(
            f"cannot join the Ray cluster at {where} ({first_line(exc)}); check the address and "
            "that this machine has that cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN_PATH)"
        ) from None
    except ray.exceptions.AuthenticationError as exc:
        raise UserError(
            f"the Ray cluster at {where} requires its token ({first_line(exc).split('. ')[0]}); "
            "copy the head's ~/.ray/auth_token here or set RAY_AUTH_TOKEN_PATH"
        ) from None


def join_if_addressed() -> None:
    """With ``RAY_ADDRESS`` set, join that cluster now, before a run writes anything: an
    unreachable head or a missing token is bad input like any other."""
    if os.environ.get("RAY_ADDRESS", "").strip():
        connect()


def check_address() -> None:
    """A ``RAY_ADDRESS`` of the form HOST:PORT must answer (Ray itself would retry for
    minutes); ``auto``, ``local`` and URLs are left to Ray."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"RAY_ADDRESS={address}: expected HOST:PORT of a Ray head's GCS")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(
            f"RAY_ADDRESS={address}: no Ray head answers there ({exc.strerror or exc})"
        ) from None


def alive_nodes() -> int:
    """How many nodes the connected cluster has now."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0))


def decide_gpu(use_gpu: str, count: int) -> bool:
    """Whether ``count`` workers get one GPU each: ``auto`` when the cluster has that many,
    ``yes`` (refused when it has not), ``no``."""
    if use_gpu not in GPU_CHOICES:
        raise UserError(f"--use-gpu {use_gpu}: must be one of {', '.join(GPU_CHOICES)}")
    if use_gpu == "no":
        return False
    enough = cluster_gpus() >= max(1, count)
    if use_gpu == "yes" and not enough:
        raise UserError(f"--use-gpu yes: the cluster has fewer than {count} GPUs")
    return enough


def check_cpus(what: str, need: float, *, hint: str) -> None:
    """Ray holds actors back until their CPUs are free. When a job asks for more CPUs than the
    cluster has: on an instance this process started (no node joins it, so the run would wait
    for ever) a UserError; on a cluster joined, a warning that the run waits until CPUs join.
    ``hint``: the settings that lower the count."""
    from runkit import ray_compat

    have = cluster_cpus()
    if need <= have:
        return
    if ray_compat.head_started_here() is not None:
        raise UserError(
            f"{what} need {need:g} CPUs at once and this machine's Ray instance has {have:g}; "
            f"fewer actors, or {hint}"
        )
    print(
        f"rlgen: {what} need {need:g} CPUs and this cluster has {have:g}; the run waits "
        f"until CPUs join (or {hint})",
        file=sys.stderr,
    )
