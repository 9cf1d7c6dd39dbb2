"""``--config FILE`` and ``--set KEY=VALUE`` handling: one flat mapping of config keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from runkit.checks import check_finite
from runkit.errors import UserError, first_line

# A config file is a few lines of keys; anything larger is not one (and is not read).
MAX_CONFIG_BYTES = 1 << 20


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value with YAML scalar rules: ``3`` -> 3, ``1e-3`` -> 0.001,
    ``true`` -> True, ``[64,64]`` -> [64, 64], anything else stays a string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        # YAML reads "1e-3" as a string; accept the float spelling people use on the CLI.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping of config keys; a missing or malformed file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path}: no such file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"--config {path}: larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        raise UserError(f"--config {path}: cannot parse ({first_line(exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"--config {path}: expected a mapping of KEY: VALUE, got {type(data).__name__}"
        )
    try:
        check_finite(f"--config {path}", data)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return dict(data)


def merge_overrides(config_file: str | None, sets: list[str] | None) -> dict[str, Any]:
    """``--config`` first, then each ``--set KEY=VALUE`` in order (``--set`` wins)."""
    merged: dict[str, Any] = load_config_file(config_file) if config_file else {}
    for item in sets or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        value = parse_value(raw.strip())
        try:
            check_finite(f"--set {key.strip()}", value)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        merged[key.strip()] = value
    return merged
