"""The docs agree with what they describe: docs/benchmarks.md with bench/results/*.json, the
README's shape (a guide of at most 300 lines that starts with the two set-up commands), every
relative link in README.md and docs/*.md, and every rlgen command line shown in them with the
CLI's parser. No Ray, no subprocess."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from runkit.errors import UserError

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
        ({"peer": 2.0, "peer_name": None}, "together or not at all"),
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


# --- README.md and docs/*.md ------------------------------------------------------------------

FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)  # list items indent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _code_blocks(text: str, lang: str | None = None) -> list[str]:
    return [textwrap.dedent(body) for kind, body in FENCE.findall(text) if lang in (None, kind)]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where links are not links."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings: lower case, punctuation dropped, spaces to '-'."""
    heads = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", text), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_readme_is_a_short_guide_that_starts_with_the_two_commands():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert lines[0] == "# rlgen"
    before_sections = text.split("\n## ", 1)[0]
    blocks = [b.strip() for b in _code_blocks(before_sections)]
    assert blocks == SETUP_COMMANDS, "README.md must open with exactly the two set-up commands"


def _documents() -> list[Path]:
    return [README, *DOCS]


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: p.name)
def test_relative_links_point_at_files_that_exist(doc):
    broken = []
    for target in LINK.findall(_prose(doc.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path) if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def _rlgen_command_lines(doc: Path) -> list[list[str]]:
    """The arguments of every rlgen command in the document's bash blocks: ``rlgen ...``,
    ``.venv/bin/rlgen ...``, and what follows ``rlgen.py --`` or ``-- rlgen`` (ray submit,
    ray job submit), each part of a ``&&`` / ``|`` / ``;`` chain on its own."""
    commands = []
    for block in _code_blocks(doc.read_text(), "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            parts: list[list[str]] = [[]]
            for word in words:
                if word in ("&&", "||", "|", ";"):
                    parts.append([])
                else:
                    parts[-1].append(word)
            for part in parts:
                while part and re.fullmatch(r"[A-Z_]+=\S*", part[0]):
                    part = part[1:]  # VAR=value before the command
                if "--" in part:
                    before, after = part[: part.index("--")], part[part.index("--") + 1 :]
                    if before and before[-1] == "rlgen.py":
                        part = ["rlgen", *after]
                    elif after:
                        part = after
                if part and part[0] in ("rlgen", ".venv/bin/rlgen"):
                    commands.append(part[1:])
    return commands


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: p.name)
def test_rlgen_commands_in_the_docs_parse(doc):
    import rlgen_cli

    parser = rlgen_cli.build_parser()
    for args in _rlgen_command_lines(doc):
        try:
            parser.parse_args(args)
        except UserError as err:
            pytest.fail(f"{doc.relative_to(ROOT)}: rlgen {shlex.join(args)}: {err}")


def test_the_command_finder_sees_every_form(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "```bash\n"
        "pip install -e . && .venv/bin/rlgen train reinforce --env CartPole-v1\n"
        "RAY_ADDRESS=127.0.0.1:6379 rlgen eval runs/a  # a comment\n"
        "ray submit cluster/aws.yaml rlgen.py -- tune --list\n"
        "ray job submit --address http://127.0.0.1:8265 -- rlgen sample runs/v --n 4\n"
        "rlgen train vae \\\n    --epochs 2\n"
        "```\n"
        "1. item\n\n   ```bash\n   rlgen tune --list\n   ```\n"
        "```\nrlgen train JOB [--not-parsed]\n```\n"
    )
    assert _rlgen_command_lines(doc) == [
        ["train", "reinforce", "--env", "CartPole-v1"],
        ["eval", "runs/a"],
        ["tune", "--list"],
        ["sample", "runs/v", "--n", "4"],
        ["train", "vae", "--epochs", "2"],
        ["tune", "--list"],
    ]
