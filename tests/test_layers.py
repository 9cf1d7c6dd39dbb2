"""The layering of docs/architecture.md, enforced: imports between the top-level packages go
only in the allowed directions, and no module imports itself through a chain of others (no cycles).
Imports inside functions count too: a lazy import is still a dependency; the block under
``if __name__ == "__main__":`` does not (it runs only when the file is the script, as
``rlgen.py`` is under ``ray submit``, where it hands over to the command line).

Above the two job packages nothing asks which kind of job it holds: the API, the command line
and Tune's machinery go through the job-kind interface and its registry (``jobs.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# What each top-level part may import from the project (itself always).
ALLOWED = {
    "runkit": set(),
    "envs": {"runkit"},
    "algorithms": {"envs", "runkit"},
    "generative": {"runkit"},
    "jobs": {"algorithms", "generative", "runkit"},  # the registry of job kinds
    "tuning": {"jobs", "runkit"},  # Tune's machinery: the interface only
    "tune_configs": {"tuning", "algorithms", "generative", "envs", "runkit"},  # the experiments
    # rlgen's eval, record and sample are one kind's own commands; cmd_data imports datasets.
    "rlgen": {"jobs", "tuning", "tune_configs", "algorithms", "generative", "runkit"},
    "rlgen_parser": {"rlgen", "jobs", "runkit"},
    "rlgen_cli": {"rlgen", "rlgen_parser", "jobs", "tune_configs", "generative", "runkit"},
    "bench": {"algorithms", "generative", "envs", "runkit", "rlgen", "bench"},
}
PARTS = set(ALLOWED)
TOP_MODULES = {"rlgen", "rlgen_cli", "rlgen_parser", "jobs"}  # single files at the top
# Names that decide by kind of job; none may appear above the two job packages.
KIND_BRANCHES = {"is_rl", "ALGORITHMS", "MODELS", "RL_ONLY", "GENERATIVE_ONLY", "RL_JOBS",
                 "GENERATIVE_JOBS", "RL_METRIC", "GEN_METRIC"}  # fmt: skip
ABOVE_THE_JOBS = ("rlgen.py", "rlgen_cli.py", "rlgen_parser.py", "tuning")


def _modules() -> dict[str, Path]:
    """Every project module by dotted name (tests excluded)."""
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for part in PARTS - TOP_MODULES:
        for path in (ROOT / part).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports, anywhere in it: ``from a.b import c`` is module
    ``a.b.c`` when that is a module, else ``a.b``."""
    out: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    tree.body = [node for node in tree.body if not _script_block(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            names = [n for n in names[:-1] if n in modules] or [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def _script_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` at module level."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, deps in graph.items():
        part = name.split(".")[0]
        for dep in deps:
            target = dep.split(".")[0]
            if target != part and target not in ALLOWED[part]:
                bad.append(f"{name} imports {dep}")
    return sorted(bad)


def test_packages_import_only_the_layers_below():
    bad = _violations(_graph())
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_checks_see_a_break():
    """The project's graph with the breaks the layering forbids added: the generative side
    reaching into the RL side, the bottom layer importing a job, and a two-module cycle."""
    graph = _graph()
    graph["generative.run_loop"].add("algorithms.run_loop")
    graph["runkit.rundir"].add("envs.ids")
    assert _violations(graph) == [
        "generative.run_loop imports algorithms.run_loop",
        "runkit.rundir imports envs.ids",
    ]
    graph["algorithms.checkpoints"].add("algorithms.evaluate")
    assert _cycles(graph) == [["algorithms.checkpoints", "algorithms.evaluate"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    modules = _modules()
    assert {"rlgen", "runkit.rundir", "algorithms.run_loop", "generative.run_loop"} <= set(modules)
    assert "runkit.rundir" in _imports(modules["algorithms.run_loop"], modules)


def _kind_branches(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            if isinstance(node, ast.alias):
                name = node.name.rpartition(".")[2]
            if name in KIND_BRANCHES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def _above_the_jobs() -> list[Path]:
    return [p for name in ABOVE_THE_JOBS for p in sorted((ROOT / name).glob("**/*.py"))] + [
        ROOT / name for name in ABOVE_THE_JOBS if name.endswith(".py")
    ]


def test_no_branch_on_the_kind_of_job_above_the_job_packages():
    assert _kind_branches(_above_the_jobs()) == []


def test_the_branch_check_sees_a_branch(tmp_path):
    """A module deciding by kind (an ``is_rl`` test, the RL registry imported) is found."""
    bad = ROOT / "tuning" / "_probe_branch.py"
    bad.write_text("from algorithms import ALGORITHMS\n\n\ndef f(exp):\n    return exp.is_rl\n")
    try:
        found = _kind_branches([bad])
    finally:
        bad.unlink()
    assert [line.split(": ")[1] for line in found] == ["ALGORITHMS", "is_rl"]
