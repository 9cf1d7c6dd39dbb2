"""The docs agree with what they describe: docs/benchmarks.md with bench/results/*.json, the
README's shape (a guide of at most 300 lines that starts with the two set-up commands), every
relative link in README.md and docs/*.md, and every rlgen command line shown in them with the
CLI's parser. No Ray, no subprocess."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
SETUP_COMMANDS = [
    "python3.11 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e . && "
    ".venv/bin/rlgen train reinforce --env CartPole-v1",
    "python3.11 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e '.[test]' && "
    ".venv/bin/python tests/system_packages.py && .venv/bin/python -m pytest",
]
README_MAX_LINES = 300


def _summary():
    """bench/summary.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_summary", ROOT / "bench" / "summary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_summary"] = module
    spec.loader.exec_module(module)
    return module


# --- docs/benchmarks.md ------------------------------------------------------------------------


def test_benchmarks_page_is_what_the_json_files_give():
    summary = _summary()
    found, _ = summary.load_results()
    assert found, "no result file with a headline in bench/results"
    expected = summary.render(found, summary.benchmark_scripts())
    assert summary.DOC.read_text() == expected, (
        "docs/benchmarks.md differs from bench/results/*.json: run "
        ".venv/bin/python bench/summary.py (never edit the page by hand)"
    )
    assert summary.main(["--check"]) == 0


def _copy_results(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    shutil.copytree(ROOT / "bench" / "results", results, ignore=shutil.ignore_patterns("*.png"))
    page = tmp_path / "benchmarks.md"
    shutil.copy(ROOT / "docs" / "benchmarks.md", page)
    return results, page


def test_check_fails_when_a_figure_changes(tmp_path):
    summary = _summary()
    results, page = _copy_results(tmp_path)
    path = sorted(p for p in results.glob("*.json") if "headline" in json.loads(p.read_text()))[0]
    report = json.loads(path.read_text())
    report["headline"][0]["ours"] += 1000
    path.write_text(json.dumps(report, indent=2) + "\n")
    assert summary.main(["--check", "--results", str(results), "--out", str(page)]) == 1
    assert summary.main(["--results", str(results), "--out", str(page)]) == 0
    assert summary.main(["--check", "--results", str(results), "--out", str(page)]) == 0


def test_check_fails_when_the_page_is_edited_by_hand(tmp_path):
    summary = _summary()
    results, page = _copy_results(tmp_path)
    assert summary.main(["--check", "--results", str(results), "--out", str(page)]) == 0
    page.write_text(page.read_text().replace(" env steps |", " env steps (hand edit) |", 1))
    assert summary.main(["--check", "--results", str(results), "--out", str(page)]) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ours": "fast"}, "must be a number"),
        ({"ours": float("nan")}, "must be finite"),
        ({"peer": 2.0}, "together or not at all"),
        ({"command": ""}, "non-empty string"),
        ({"ratio": 2.0}, "exactly the keys"),
    ],
)
def test_a_malformed_headline_is_refused(tmp_path, change, message, capsys):
    summary = _summary()
    results, page = _copy_results(tmp_path)
    path = next(p for p in results.glob("*.json") if "headline" in json.loads(p.read_text()))
    report = json.loads(path.read_text())
    report["headline"][0].update(change)
    path.write_text(json.dumps(report, indent=2) + "\n")
    assert summary.main(["--check", "--results", str(results), "--out", str(page)]) == 2
    assert message in capsys.readouterr().err
