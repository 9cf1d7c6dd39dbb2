"""How the suite is dealt to its two xdist workers (tests/scheduling.py): the modules that
share a per-process fixture or run stay on one worker, and the longest units go first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import scheduling
from tests.conftest import ROOT


def test_grouped_modules_form_one_unit_and_the_rest_one_unit_per_test():
    assert scheduling.unit_of("tests/test_vae_job.py::test_a[x-1]") == "gen_runs"
    assert scheduling.unit_of("tests/test_pixelcnn_job.py::test_b") == "gen_runs"
    assert scheduling.unit_of("tests/test_security.py::test_c") == "test_security"
    assert scheduling.unit_of("tests/test_cli.py::test_d[a]") == "tests/test_cli.py::test_d[a]"


def test_units_are_dealt_longest_first_with_a_groups_tests_together(monkeypatch):
    monkeypatch.setattr(scheduling, "GROUPS", {"test_g": "g"})
    monkeypatch.setattr(scheduling, "COST_S", {"test_g": 2.0, "test_a": 3.0, "test_b": 5.0})
    monkeypatch.setattr(scheduling, "TEST_COST_S", {"tests/test_a.py::slow": 9.0})
    ids = [
        "tests/test_a.py::one", "tests/test_g.py::x", "tests/test_b.py::two",
        "tests/test_a.py::slow", "tests/test_new.py::unknown", "tests/test_g.py::y",
        "tests/test_g.py::z",
    ]  # fmt: skip
    # slow 9, unknown 10 (the default), g 3 x 2 = 6, two 5, one 3.
    assert scheduling.longest_first(ids) == [
        "tests/test_new.py::unknown", "tests/test_a.py::slow", "tests/test_g.py::x",
        "tests/test_g.py::y", "tests/test_g.py::z", "tests/test_b.py::two", "tests/test_a.py::one",
    ]  # fmt: skip


def test_every_module_that_shares_something_per_process_is_grouped():
    """A module-scoped fixture or tests/gen_runs.py's runs would be made again on each worker
    that runs one of the module's tests."""
    shares = re.compile(r"scope=.(module|package).|^from tests.gen_runs import", re.M)
    sharing = {p.stem for p in (ROOT / "tests").glob("test_*.py") if shares.search(p.read_text())}
    assert sharing and sharing <= set(scheduling.GROUPS), sharing - set(scheduling.GROUPS)


def test_costs_refresh_from_a_junit_report(tmp_path: Path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="tests.test_a" name="x" time="3.0"/>'
        '<testcase classname="tests.test_a" name="y" time="1.0"/>'
        '<testcase classname="tests.test_b" name="z" time="0.25"/></testsuite></testsuites>'
    )
    assert scheduling._costs_from_junit(str(report)) == {"test_a": 2.0, "test_b": 0.2}


@pytest.mark.subprocess
def test_two_workers_keep_a_grouped_module_together_and_both_work():
    """The real scheduler on a slice of the suite: test_run_limits (a module-scoped fixture) on
    one worker, the other tests spread over both."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-m", "fast",
         "-p", "no:cacheprovider", "tests/test_run_limits.py", "tests/test_cli.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "scheduling tests via LongestFirst" in out.stdout
    ran = re.findall(r"^\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)", out.stdout, re.M)
    limits = {gw for gw, nodeid in ran if nodeid.startswith("tests/test_run_limits.py")}
    assert len([n for _, n in ran if "test_run_limits" in n]) > 10 and len(limits) == 1
    assert {gw for gw, _ in ran} == {"gw0", "gw1"}
