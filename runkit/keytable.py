"""The light key tables: each job's settable keys (default, Atari default, rule, one line of
meaning) as JSON (``key_tables.json``), generated from the config classes by ``rlgen keys
--write`` (tests/test_keys.py checks it matches them).

Reading it costs milliseconds, so ``precheck`` refuses a bad ``--set`` key or value before
RLlib, torch or Ray is imported, through the job's own check function (named in its table, so
the words are those of the full check), and ``rlgen keys JOB`` and docs/keys.md print it.
"""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path
from typing import Any

from runkit.checks import Rule

PATH = Path(__file__).with_name("key_tables.json")


@functools.cache
def tables() -> dict[str, Any]:
    return json.loads(PATH.read_text())


def precheck(job: str, overrides: dict[str, Any]) -> None:
    """Refuse a bad key or value of ``overrides`` with the UserError the full check would
    raise; a job without a table (or a check that needs the built config) passes here."""
    table = tables().get(job)
    if table is None or not isinstance(overrides, dict):
        return
    module, _, name = table["precheck"].partition(":")
    getattr(importlib.import_module(module), name)(job, overrides, table)


def rows(job: str) -> list[tuple[str, str, str, str]]:
    """(key, default, rule, meaning) of each key; the default notes the Atari one."""
    out = []
    for key, row in tables()[job]["keys"].items():
        default = json.dumps(row["default"])
        if "atari" in row and row["atari"] != row["default"]:
            default += f" (Atari {json.dumps(row['atari'])})"
        rule = Rule.from_data(row["rule"]).describe() if "rule" in row else _kind(row["default"])
        out.append((key, default, rule, row["doc"].replace("``", "")))
    return out


def _kind(default: Any) -> str:
    """A key without a rule of rlgen's: its type, from its default (RLlib checks the value)."""
    names = {bool: "true or false", int: "integer", float: "number", str: "text", list: "list"}
    return names.get(type(default), "any") + " (checked by RLlib)"


def text(job: str) -> str:
    """``rlgen keys JOB``: one block per key."""
    lines = [f"{job}: keys for --set KEY=VALUE and --config files"]
    for key, default, rule, meaning in rows(job):
        lines += [f"  {key} = {default}", f"      {rule}", f"      {meaning}"]
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """docs/keys.md: one table per job."""
    parts = [
        "# Config keys\n",
        "Generated from the config classes by `rlgen keys --write`; `rlgen keys JOB` prints "
        "the same. Set any of them with `--set KEY=VALUE` (values are YAML: `0.5`, `true`, "
        "`[64, 64]`) or in a `--config` file. A value outside its rule is refused before "
        "anything starts.\n",
    ]
    for job in tables():
        parts.append(f"\n## {job}\n\n| key | default | allowed | meaning |\n|---|---|---|---|\n")
        for key, default, rule, meaning in rows(job):
            cells = (f"`{key}`", f"`{default}`", rule, meaning)
            parts.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n")
    return "".join(parts)
