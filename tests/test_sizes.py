"""Sizes: no project file over 350 lines and no function over 60 lines (the bench scripts and
the tests included), so that each file holds one subject and each function one step a reader
can see whole. A test module or test function that cannot be split without losing its thread
goes in ``ALLOWED`` with the reason; nothing outside ``tests/`` may. Lines are counted as
``wc -l`` counts them; a function's lines from its ``def`` to its last line (decorators not
counted), as ``ast`` gives them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 60

# "tests/FILE.py" (a file over MAX_FILE_LINES) or "tests/FILE.py::FUNCTION" -> why it stays.
ALLOWED: dict[str, str] = {}
MAX_ALLOWED = 5  # the list stays short


def python_files(root: Path) -> list[Path]:
    """Every ``.py`` file under ``root``, outside hidden folders (the venv, git's) and caches."""
    return sorted(path for path in root.rglob("*.py") if not _skipped(path.relative_to(root)))


def _skipped(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def oversized(root: Path) -> tuple[dict[str, int], dict[str, int]]:
    """The files over MAX_FILE_LINES (relative path -> lines) and the functions over
    MAX_FUNCTION_LINES (``path::name:line`` -> lines) under ``root``."""
    files: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            files[rel] = text.count("\n")
        for node in ast.walk(ast.parse(text, filename=rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    functions[f"{rel}::{node.name}:{node.lineno}"] = length
    return files, functions


def _not_allowed(found: dict[str, int]) -> list[str]:
    return [
        f"{where}: {lines} lines"
        for where, lines in found.items()
        if where.rsplit(":", 1)[0] not in ALLOWED and where not in ALLOWED
    ]


def test_no_file_over_350_lines():
    files, _ = oversized(ROOT)
    assert not _not_allowed(files), (
        f"over {MAX_FILE_LINES} lines (split by subject into modules): {_not_allowed(files)}"
    )


def test_no_function_over_60_lines():
    _, functions = oversized(ROOT)
    assert not _not_allowed(functions), (
        f"over {MAX_FUNCTION_LINES} lines (split into named helpers): {_not_allowed(functions)}"
    )


def test_the_allow_list_is_short_current_and_tests_only():
    assert len(ALLOWED) <= MAX_ALLOWED, sorted(ALLOWED)
    files, functions = oversized(ROOT)
    over = set(files) | {where.rsplit(":", 1)[0] for where in functions}
    for entry, why in ALLOWED.items():
        assert entry.startswith("tests/") and why.strip(), entry
        assert entry in over, f"{entry} is within the limits now: take it off ALLOWED"


def test_the_scan_finds_a_long_file_and_a_long_function(tmp_path):
    """The scan itself: a 61-line function and a 351-line file are found, a 60-line function in
    a 350-line file is not (under hidden folders nothing is looked at)."""
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "short.py").write_text(
        f"def fits():\n{body}" + "\n" * (MAX_FILE_LINES - 60)
    )
    assert oversized(tmp_path) == ({}, {})
    (tmp_path / "pkg" / "long.py").write_text(
        f"async def too_long():\n{body}    x = 1\n" + "\n" * (MAX_FILE_LINES - 60)
    )
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "lib.py").write_text("\n" * 1000)
    files, functions = oversized(tmp_path)
    assert files == {"pkg/long.py": MAX_FILE_LINES + 1}
    assert functions == {"pkg/long.py::too_long:1": MAX_FUNCTION_LINES + 1}
    assert _not_allowed(functions) == ["pkg/long.py::too_long:1: 61 lines"]
