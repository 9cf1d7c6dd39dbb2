"""Schedules of a scalar over env steps (pure)."""

from __future__ import annotations


def linear_schedule(t: float, *, start: float, end: float, steps: float) -> float:
    """Linear from ``start`` at t=0 to ``end`` at t=steps, constant after:
    ``linear_schedule(50, start=1.0, end=0.1, steps=100) == 0.55``."""
    if steps <= 0:
        return end
    frac = min(max(t / steps, 0.0), 1.0)
    return start + frac * (end - start)


def piecewise_linear(t: float, points: list[list[float]]) -> float:
    """Linear interpolation through ``[[t_0, v_0], [t_1, v_1], ...]`` (t ascending), constant
    before the first point and after the last:
    ``piecewise_linear(50, [[0, 0.01], [100, 0.0]]) == 0.005``."""
    ts = [float(p[0]) for p in points]
    vs = [float(p[1]) for p in points]
    if t <= ts[0]:
        return vs[0]
    for i in range(1, len(ts)):
        if t <= ts[i]:
            t0, t1, v0, v1 = ts[i - 1], ts[i], vs[i - 1], vs[i]
            return v0 if t1 == t0 else v0 + (t - t0) / (t1 - t0) * (v1 - v0)
    return vs[-1]


def scalar_or_schedule(value: float | list[list[float]], t: float) -> float:
    """A fixed number, or a ``piecewise_linear`` schedule over env steps read at ``t``."""
    return piecewise_linear(t, value) if isinstance(value, list) else float(value)
