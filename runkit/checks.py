"""Checks shared by every job's config (RL ``validate()`` and the generative configs): each
raises ``ValueError`` with a message that names the key, the value and what is allowed."""

from __future__ import annotations

from typing import Any


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    """Raise ValueError("name=value is out of range: must be ...") unless low <= value <= high
    (strict where ``*_open``), and an int where ``integer``."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name}={value!r} must be {kind}")
    lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
    hi = "" if high is None else (f"< {high}" if high_open else f"<= {high}")
    rule = " and ".join(part for part in (lo, hi) if part)
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        raise ValueError(f"{name}={value!r} is out of range: must be {rule}")


def check_schedule(name: str, value: Any, *, low: float = 0.0) -> None:
    """A number >= ``low``, or a schedule ``[[env_step, value], ...]``: at least one pair, env
    steps >= 0 and non-decreasing, every value >= ``low``."""
    if not isinstance(value, list):
        check_range(name, value, low=low)
        return
    rule = "a number or [[env_step, value], ...] with env steps ascending"
    if not value or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        raise ValueError(f"{name}={value!r} must be {rule}")
    for step, v in value:
        check_range(f"{name} env step", step, low=0)
        check_range(f"{name} value", v, low=low)
    steps = [p[0] for p in value]
    if steps != sorted(steps):
        raise ValueError(f"{name}={value!r} must be {rule}")


def check_bool(name: str, value: Any) -> None:
    """Raise ValueError("name=x must be true or false") unless value is a bool."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be true or false")


def check_widths(name: str, value: Any) -> None:
    """Hidden layer widths: a non-empty list of positive integers."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0
    if not ok or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in value):
        raise ValueError(f"{name}={value!r} must be a list of positive integers, e.g. [64, 64]")


def check_list(name: str, value: Any, rule: str, length: int) -> list:
    """A list of ``length`` items, ``rule`` naming them (e.g. "[start, env steps]")."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ValueError(f"{name}={value!r} must be {rule}")
    return list(value)


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ValueError("name='x' is not one of a, b, c") unless value is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
