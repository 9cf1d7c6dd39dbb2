"""Reports from Ray workers to the caller's process while a blocking call (Ray Train's
``fit()``) runs, and the caller's answer back: the per-epoch callback and progress output of
jobs whose loop runs on remote workers.

The worker puts each report into a small actor (no CPU) and, when the caller has a callback,
waits for the caller's stop-or-go answer before it starts the next epoch. A thread in the caller
takes the reports, prints progress, calls the callback and answers.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from runkit.results import OnReport, Report

POLL_S = 0.2


class _Mailbox:
    """The actor between the workers and the caller."""

    def __init__(self) -> None:
        self._reports: list[Report] = []
        self._notices: list[str] = []
        self._answers: dict[int, bool] = {}
        self._committed = 0
        self._failure: str | None = None

    def fail(self, text: str) -> None:
        self._failure = self._failure or text

    def failure(self) -> str | None:
        return self._failure

    def commit(self, iteration: int) -> None:
        self._committed = max(self._committed, iteration)

    def committed(self) -> int:
        return self._committed

    def put(self, report: Report) -> None:
        self._reports.append(report)

    def notice(self, text: str) -> None:
        self._notices.append(text)

    def take(self) -> tuple[list[Report], list[str]]:
        reports, self._reports = self._reports, []
        notices, self._notices = self._notices, []
        return reports, notices

    def answer(self, iteration: int, stop: bool) -> None:
        self._answers[iteration] = stop

    def answer_for(self, iteration: int) -> bool | None:
        return self._answers.get(iteration)


def send(mailbox: Any, report: Report, *, wait_for_answer: bool) -> bool:
    """Worker side: deliver ``report``; with ``wait_for_answer``, block until the caller has
    seen it and return whether it asked to stop."""
    import ray

    ray.get(mailbox.put.remote(report))
    if not wait_for_answer:
        return False
    while True:
        answer = ray.get(mailbox.answer_for.remote(report.iteration))
        if answer is not None:
            return bool(answer)
        time.sleep(POLL_S / 4)


def commit(mailbox: Any, iteration: int) -> None:
    """Ray Train's controller side: the checkpoint of ``iteration`` is registered (a retry
    starts from it)."""
    mailbox.commit.remote(iteration)


def wait_committed(mailbox: Any, iteration: int, *, timeout_s: float = 600.0) -> None:
    """Worker side, after reporting ``iteration``'s checkpoint: block until the controller has
    registered it, so nothing is announced for an epoch a retry would train again."""
    import ray

    deadline = time.monotonic() + timeout_s
    while ray.get(mailbox.committed.remote()) < iteration:
        if time.monotonic() > deadline:
            raise TimeoutError(f"checkpoint of epoch {iteration} not registered in {timeout_s} s")
        time.sleep(POLL_S / 4)


def fail(mailbox: Any, text: str) -> None:
    """Worker side: the run cannot go on (the caller raises ``RunFailed`` with ``text`` once
    the workers have returned)."""
    import ray

    ray.get(mailbox.fail.remote(text))


def notice(mailbox: Any, text: str) -> None:
    """Any Ray process: a line for the caller's terminal (``rlgen: <text>``), without waiting."""
    mailbox.notice.remote(text)


class Relay:
    """Caller side, as a context manager around the blocking call: ``handle`` goes to the
    workers; ``show(report)`` prints progress; notices are printed to stderr; ``stopped`` tells
    whether the callback stopped the run, ``failure`` why a worker ended it (``fail``); a
    callback's exception is re-raised on exit."""

    def __init__(self, show: Callable[[Report], None], on_report: OnReport | None) -> None:
        import ray

        self.handle: Any = ray.remote(num_cpus=0)(_Mailbox).remote()
        self.waits = on_report is not None
        self.stopped = False
        self.failure: str | None = None
        self._show, self._on_report = show, on_report
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _drain(self) -> None:
        import ray

        reports, notices = ray.get(self.handle.take.remote())
        for text in notices:
            print(f"rlgen: {text}", file=sys.stderr, flush=True)
        for report in reports:
            self._show(report)
            stop = self.stopped
            if self._on_report is not None and not stop:
                try:
                    stop = bool(self._on_report(report))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error, stop = exc, True
            self.stopped = self.stopped or stop
            if self.waits:
                self.handle.answer.remote(report.iteration, stop)

    def _run(self) -> None:
        while not self._done.wait(POLL_S):
            self._drain()

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()
        self._drain()
        import ray

        self.failure = ray.get(self.handle.failure.remote())
        ray.kill(self.handle)
        if self._error is not None and exc[0] is None:
            raise self._error
