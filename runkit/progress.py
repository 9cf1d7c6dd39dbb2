"""Progress output: one terminal line per iteration or epoch on stderr, at most once a second
(``every_s``) unless forced, so the last line is always shown."""

from __future__ import annotations

import sys
import time


class ProgressLine:
    def __init__(self, label: str, *, every_s: float = 1.0) -> None:
        self.label = label
        self.every_s = every_s
        self._last = -float("inf")

    def __call__(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        print(f"[{self.label}] {text}", file=sys.stderr, flush=True)
