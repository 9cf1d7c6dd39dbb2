"""Schedules of a scalar over env steps (pure)."""

from __future__ import annotations


def linear_schedule(t: float, *, start: float, end: float, steps: float) -> float:
    """Linear from ``start`` at t=0 to ``end`` at t=steps, constant after:
    ``linear_schedule(50, start=1.0, end=0.1, steps=100) == 0.55``."""
    if steps <= 0:
        return end
    frac = min(max(t / steps, 0.0), 1.0)
    return start + frac * (end - start)
