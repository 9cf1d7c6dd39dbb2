"""Checks shared by every job's config (RL ``validate()`` and the generative configs): each
raises ``ValueError`` with a message that names the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

# Bounds on the sizes a config (or a stored run spec) may ask for, so that a few bytes of JSON
# cannot make a process allocate gigabytes: hidden widths, hidden layers, and the weights of one
# MLP's hidden layers (the sum of products of consecutive widths).
MAX_WIDTH = 4096
MAX_LAYERS = 8
MAX_HIDDEN_WEIGHTS = 2**24
# Seeds are what numpy's and Ray's generators accept: 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


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
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
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
    """Hidden layer widths: a non-empty list of at most ``MAX_LAYERS`` positive integers, each
    at most ``MAX_WIDTH``, with at most ``MAX_HIDDEN_WEIGHTS`` weights between them."""
    ok = isinstance(value, (list, tuple)) and 0 < len(value) <= MAX_LAYERS
    if not ok or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in value):
        raise ValueError(
            f"{name}={_short(value)} must be a list of positive integers (1 to {MAX_LAYERS} "
            "of them), e.g. [64, 64]"
        )
    if max(value) > MAX_WIDTH:
        raise ValueError(f"{name}={_short(value)}: each width must be <= {MAX_WIDTH}")
    weights = sum(a * b for a, b in zip(value, value[1:], strict=False))
    if weights > MAX_HIDDEN_WEIGHTS:
        raise ValueError(
            f"{name}={_short(value)}: {weights:,} weights between hidden layers, more than "
            f"{MAX_HIDDEN_WEIGHTS:,}"
        )


def check_seed(name: str, value: Any) -> None:
    """A seed: an integer in 0 .. 2**32 - 1 (what numpy's and Ray's generators take)."""
    check_range(name, value, low=0, high=MAX_SEED, integer=True)


def check_finite(name: str, value: Any, *, max_items: int = 100_000) -> None:
    """Every number inside ``value`` (nested lists and dicts) is finite, and the structure has
    at most ``max_items`` items, counting every visit (a YAML file's aliases may repeat one
    list many times over)."""
    seen = 0
    stack = [value]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > max_items:
            raise ValueError(f"{name}: more than {max_items:,} values")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{name}={item!r} must be a finite number")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_list(name: str, value: Any, rule: str, length: int) -> list:
    """A list of ``length`` items, ``rule`` naming them (e.g. "[start, env steps]")."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise ValueError(f"{name}={value!r} must be {rule}")
    return list(value)


def check_text(name: str, value: Any, max_chars: int) -> None:
    """A string of 1 to ``max_chars`` characters without control characters (a path or URI
    given as a key's value)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}={_short(value)} must be a non-empty string")
    if len(value) > max_chars or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            f"{name}={_short(value)}: at most {max_chars} characters, none of them control "
            "characters"
        )


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ValueError("name='x' is not one of a, b, c") unless value is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one config key takes, as data: ``check`` raises the ValueError of the check
    functions above, ``describe`` says it in words (``rlgen keys``, docs/keys.md), and
    ``to_data`` / ``from_data`` carry it into the light key tables (``runkit.keytable``).

    ``kind``: number, integer, choice, bool, widths, schedule (a number or ``[[env_step,
    value], ...]``), items (a list of named ``parts``, e.g. ``[start, end, env steps]``) or
    text (a string of at most ``high`` characters; ``shape`` says what it names).
    ``optional``: None is allowed too; ``or_list``: a list is allowed too (RLlib's lr schedule,
    checked by RLlib)."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    or_list: bool = False
    parts: tuple[tuple[str, Rule], ...] = ()
    shape: str = ""

    def check(self, name: str, value: Any) -> None:
        if (value is None and self.optional) or (isinstance(value, list) and self.or_list):
            return
        if self.kind in ("number", "integer"):
            check_range(
                name, value, low=self.low, high=self.high, low_open=self.low_open,
                high_open=self.high_open, integer=self.kind == "integer",
            )  # fmt: skip
        elif self.kind == "choice":
            check_choice(name, value, self.choices)
        elif self.kind == "bool":
            check_bool(name, value)
        elif self.kind == "widths":
            check_widths(name, value)
        elif self.kind == "schedule":
            check_schedule(name, value, low=0.0 if self.low is None else self.low)
        elif self.kind == "text":
            check_text(name, value, int(self.high or 0))
        elif self.kind == "items":
            items = check_list(name, value, self.shape, len(self.parts))
            for (part, rule), item in zip(self.parts, items, strict=True):
                rule.check(f"{name} {part}", item)
        else:
            raise AssertionError(f"unknown rule kind {self.kind!r}")

    def describe(self) -> str:
        """The rule in words, e.g. ``integer, >= 1 and <= 1024`` or ``one of adam, rmsprop``."""
        if self.kind in ("number", "integer"):
            lo = "" if self.low is None else (">" if self.low_open else ">=") + _num(self.low)
            hi = "" if self.high is None else ("<" if self.high_open else "<=") + _num(self.high)
            text = ", ".join(p for p in (self.kind, " and ".join(x for x in (lo, hi) if x)) if p)
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "widths":
            text = f"list of 1 to {MAX_LAYERS} widths, each <= {MAX_WIDTH}"
        elif self.kind == "schedule":
            text = "number >= 0, or [[env_step, value], ...]"
        elif self.kind == "text":
            text = self.shape
        else:
            text = self.shape + ": " + "; ".join(f"{p} {r.describe()}" for p, r in self.parts)
        if self.optional:
            text += ", or null"
        if self.or_list:
            text += ", or a schedule list"
        return text

    def to_data(self) -> dict[str, Any]:
        """Plain data (only the fields that differ from the defaults)."""
        data: dict[str, Any] = {"kind": self.kind}
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if value != field.default:
                data[field.name] = value
        if self.parts:
            data["parts"] = [[p, r.to_data()] for p, r in self.parts]
        if self.choices:
            data["choices"] = list(self.choices)
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Rule:
        fields = dict(data)
        fields["choices"] = tuple(fields.get("choices", ()))
        fields["parts"] = tuple((p, cls.from_data(r)) for p, r in fields.get("parts", ()))
        return cls(**fields)


def _num(value: float) -> str:
    """A bound for ``describe``: `` 1,000`` for whole numbers, `` 0.5`` otherwise."""
    return f" {int(value):,}" if float(value).is_integer() else f" {value:g}"


def number(low: float | None = None, high: float | None = None, **flags: Any) -> Rule:
    return Rule("number", low=low, high=high, **flags)


def integer(low: float | None = None, high: float | None = None, **flags: Any) -> Rule:
    return Rule("integer", low=low, high=high, **flags)


def choice(*choices: str) -> Rule:
    return Rule("choice", choices=choices)


BOOL = Rule("bool")
WIDTHS = Rule("widths")


def text(what: str, max_chars: int = 4096, **flags: Any) -> Rule:
    return Rule("text", high=max_chars, shape=what, **flags)


def items(shape: str, *parts: tuple[str, Rule]) -> Rule:
    return Rule("items", parts=tuple(parts), shape=shape)


def class_rules(cls: type) -> dict[str, Rule]:
    """The ``RULES`` of a config class and of its bases (a subclass's rule for a key replaces
    its base's)."""
    rules: dict[str, Rule] = {}
    for klass in reversed(cls.__mro__):
        rules.update(vars(klass).get("RULES", {}))
    return rules


def check_rules(config: Any) -> None:
    """Check every key of ``config`` that its class's ``RULES`` name."""
    for key, rule in class_rules(type(config)).items():
        rule.check(key, getattr(config, key))
