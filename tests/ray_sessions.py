"""Ray nodes that the cluster tests start on this machine, and only those.

Each node runs on its own temp dir (a short link, ``/tmp/rg-XXXXXXXX``, to a directory of the
test: Unix socket paths under it must stay below ~107 bytes) and on free ports, with a marker in
its environment. Its processes are found again by that temp dir in their command line, by the
marker in their environment (a worker's command line is rewritten to ``ray::...``), and by
descent from either; stopping the node kills exactly those. Never ``ray stop``: it ends every
Ray process on the machine, a user's own jobs included.

Linux only (it reads ``/proc``). Also a script, which the launcher test's node runs in place of
``ray stop``: ``python tests/ray_sessions.py stop ROOT MARKER``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from runkit.cluster import STARTUP_TIMEOUT  # what Ray says when it gave up on its own start

MARKER = "RLGEN_TEST_RAY_SESSION"  # environment variable set on every process of a session

# What a process says when the port it was handed is taken (Ray's dashboard, gRPC, sshd).
BIND_FAILURE = re.compile(r"already (in use|occupied)|address in use|failed to bind", re.I)


@dataclasses.dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str  # the executable's name (``gcs_server``, ``raylet``, ``python``)
    cmdline: str
    started: int  # clock ticks after boot: a pid reused later has another value
    marker: str | None  # this process's value of MARKER, if any


def _proc(pid: int) -> Proc | None:
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # fields 3.. of proc(5); comm may hold ")"
        if fields[0] in ("Z", "X"):
            return None  # exited, not yet collected by its parent
        args = (base / "cmdline").read_bytes().split(b"\0")
        comm = (base / "comm").read_text().strip()
        try:
            env = (base / "environ").read_bytes().split(b"\0")
        except PermissionError:  # another user's process: never one of ours
            env = []
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    prefix = f"{MARKER}=".encode()
    marker = next((e[len(prefix) :].decode() for e in env if e.startswith(prefix)), None)
    cmdline = " ".join(a.decode(errors="replace") for a in args if a)
    return Proc(pid, int(fields[1]), comm, cmdline, int(fields[19]), marker)


def all_processes() -> dict[int, Proc]:
    procs = (_proc(int(p)) for p in os.listdir("/proc") if p.isdigit())
    return {p.pid: p for p in procs if p is not None}


def _ancestors(procs: dict[int, Proc], pid: int) -> set[int]:
    seen = set()
    while pid in procs and pid not in seen:
        seen.add(pid)
        pid = procs[pid].ppid
    return seen


@dataclasses.dataclass(frozen=True)
class Session:
    """One Ray node (or one test's SSH plumbing) started by a test, and everything it runs."""

    root: str  # short path; Ray's temp dir is ROOT/ray; "" when the session has no temp dir
    marker: str

    @classmethod
    def new(cls, where: Path | None) -> Session:
        """A session whose files live in ``where`` (reached through a short link), or one
        without a temp dir (``None``)."""
        marker = secrets.token_hex(8)
        if where is None:
            return cls("", marker)
        (where / "ray").mkdir(parents=True)
        while True:
            link = f"/tmp/rg-{secrets.token_hex(4)}"
            try:
                os.symlink(where, link)
                return cls(link, marker)
            except FileExistsError:
                continue

    @property
    def temp_dir(self) -> str:
        return f"{self.root}/ray"

    @property
    def env(self) -> dict[str, str]:
        return {MARKER: self.marker}

    def _owns(self, proc: Proc) -> bool:
        if proc.marker == self.marker:
            return True
        if not self.root:
            return False
        return any(a == self.root or a.endswith(f"={self.root}") or f"{self.root}/" in a
                   for a in proc.cmdline.split())  # fmt: skip

    def processes(self) -> dict[int, Proc]:
        """Live processes of the session: its own and their descendants, never the caller
        or the caller's ancestors."""
        procs = all_processes()
        children: dict[int, list[int]] = {}
        for p in procs.values():
            children.setdefault(p.ppid, []).append(p.pid)
        found = set()
        todo = [p.pid for p in procs.values() if self._owns(p)]
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children.get(pid, ()))
        found -= _ancestors(procs, os.getpid())
        return {pid: procs[pid] for pid in sorted(found)}

    def stop(self, *, grace: float = 2.0, timeout: float = 60.0) -> dict[int, Proc]:
        """SIGTERM every process of the session, SIGKILL what is left after ``grace``
        seconds (Ray's GCS and autoscaler monitor outlast a SIGTERM by far); returns what
        still runs after ``timeout`` (nothing, normally)."""
        start = time.monotonic()
        signalled: dict[int, int] = {}  # pid -> the last signal it got
        while True:
            left = self.processes()
            elapsed = time.monotonic() - start
            if not left or elapsed > timeout:
                if signalled:
                    name = self.root or self.marker
                    print(f"session {name}: {len(signalled)} process(es) signalled, "
                          f"{len(left)} left after {elapsed:.1f} s", file=sys.stderr)  # fmt: skip
                return left
            sig = signal.SIGKILL if elapsed > grace else signal.SIGTERM
            for pid in left:
                if signalled.get(pid) != sig:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                    signalled[pid] = sig
            time.sleep(0.2)

    def remove(self) -> None:
        if self.root:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root)

    def listening(self, ports: Iterable[int]) -> dict[int, str]:
        """Port -> who listens on it: "ours" (a process of the session), "other", or ""."""
        inodes = _listen_inodes()
        mine = _socket_inodes(self.processes())
        out = {}
        for port in ports:
            held = inodes.get(port, set())
            out[port] = "ours" if held & mine else ("other" if held else "")
        return out

    def wait_listening(self, ports: Iterable[int], timeout: float = 90.0) -> str | None:
        """None once the session listens on every port, else why not: another process holds
        one (a bind failure) or time ran out."""
        ports = list(ports)
        deadline = time.monotonic() + timeout
        while True:
            state = self.listening(ports)
            if all(s == "ours" for s in state.values()):
                return None
            taken = [p for p, s in state.items() if s == "other"]
            if taken:
                return f"port(s) {taken} already in use by another process"
            if time.monotonic() > deadline:
                missing = [p for p, s in state.items() if s != "ours"]
                return f"nothing of the session listens on {missing} after {timeout:g} s"
            time.sleep(0.2)


def describe(procs: dict[int, Proc]) -> str:
    return "; ".join(f"{p.pid} {p.cmdline[:150]}" for p in procs.values())


def _listen_inodes() -> dict[int, set[int]]:
    """Local port -> inodes of the TCP sockets listening on it (IPv4 and IPv6)."""
    out: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":  # LISTEN
                    port = int(cols[1].rsplit(":", 1)[1], 16)
                    out.setdefault(port, set()).add(int(cols[9]))
    return out


def _socket_inodes(procs: Iterable[int]) -> set[int]:
    inodes = set()
    for pid in procs:
        fd_dir = Path("/proc") / str(pid) / "fd"
        with contextlib.suppress(FileNotFoundError, PermissionError, ProcessLookupError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd_dir / fd)
                    if target.startswith("socket:["):
                        inodes.add(int(target[8:-1]))
    return inodes


def free_port() -> int:
    """A TCP port free on every address now. Whoever gets it binds it later, so a start that
    uses it retries on a bind failure (``start_on_free_ports``)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def start_on_free_ports(
    session: Session,
    names: Iterable[str],
    launch: Callable[[dict[str, int]], subprocess.CompletedProcess],
    *,
    attempts: int = 3,
    pick: Callable[[], int] = free_port,
) -> dict[str, int]:
    """Run ``launch(ports)`` (one free port per name) until the session listens on all of
    them. A launch that fails on a taken port, or that Ray gave up starting in time, is stopped
    and retried on new ports; any other failure is an AssertionError with the launch's
    output."""
    names = list(names)
    failures = []
    for attempt in range(1, attempts + 1):
        ports: dict[str, int] = {}
        while len(ports) < len(names):
            port = pick()
            if port not in ports.values():
                ports[names[len(ports)]] = port
        done = launch(ports)
        output = done.stdout + done.stderr
        problem = f"exit status {done.returncode}" if done.returncode != 0 else None
        problem = problem or session.wait_listening(ports.values())
        if problem is None:
            print(f"session {session.root or session.marker}: ports {ports}", file=sys.stderr)
            return ports
        left = session.stop()
        assert not left, f"a failed start left processes running: {describe(left)}"
        if BIND_FAILURE.search(f"{problem}\n{output}"):
            why = "a bind failure"
        elif STARTUP_TIMEOUT in output:  # Ray's fixed raylet wait, hit when both cores are busy
            why = "Ray's start-up timeout"
        else:
            raise AssertionError(f"start failed ({problem}): {output[-3000:]}")
        failures.append(f"attempt {attempt} on {ports}: {problem} ({why})")
        print(f"retrying on new ports after {why}: {failures[-1]}", file=sys.stderr)
    raise AssertionError(f"every start failed on a taken port or in time: {failures}")


@dataclasses.dataclass(frozen=True)
class Bystander:
    """A Ray head that is not the test's, as a user's own would be: the cluster tests must
    leave it running. Its GCS and raylet are recorded by pid and start time."""

    session: Session
    core: dict[int, int]  # pid -> start time

    def alive(self) -> bool:
        procs = all_processes()
        return all(pid in procs and procs[pid].started == t for pid, t in self.core.items())


@contextlib.contextmanager
def bystander_head(where: Path, env: dict[str, str]) -> Iterator[Bystander]:
    """Start a small Ray head (no CPU, no dashboard) on free ports; stop it at the end."""
    from tests.conftest import ray_cli

    session = Session.new(where)
    try:
        start_on_free_ports(
            session,
            ("gcs", "client", "agent"),
            lambda p: ray_cli(
                "start",
                "--head",
                f"--port={p['gcs']}",
                f"--ray-client-server-port={p['client']}",
                f"--dashboard-agent-listen-port={p['agent']}",
                "--min-worker-port=0",
                "--max-worker-port=0",
                "--num-cpus=0",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={session.temp_dir}",
                env={**env, **session.env},
            ),  # fmt: skip
        )
        core = {p.pid: p.started for p in session.processes().values()
                if p.comm in ("gcs_server", "raylet")}  # fmt: skip
        assert len(core) == 2, describe(session.processes())
        yield Bystander(session, core)
    finally:
        left = session.stop()
        session.remove()
    assert not left, f"the bystander head did not stop: {describe(left)}"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "stop":
        print("usage: ray_sessions.py stop ROOT MARKER", file=sys.stderr)
        return 2
    session = Session(argv[1], argv[2])
    found = len(session.processes())
    left = session.stop()
    print(f"stopped {found - len(left)} process(es) of the Ray session at {session.root}")
    if left:
        print(f"still running: {describe(left)}", file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
