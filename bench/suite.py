"""The test suite's wall time on this machine, next to a floor measured in the same run.

- ``pytest -m fast`` (unit and wiring tests, the tier to run on every change): goal <= 5 min on
  2 cores;
- ``pytest`` (what the README's test command and CI run, every tier): goal <= 20 min on 2 cores;

with a bare local Ray start and stop (bench/startup.py's floor) timed before and after, so that
a figure from a slow day shows as one. The per-module seconds of the full run (from its junit
XML, summed over both xdist workers) go into the JSON too.

    .venv/bin/python bench/suite.py    # -> bench/results/suite.json (the whole suite: minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import machine_info, set_headline  # noqa: E402
from startup import FLOORS, timed  # noqa: E402

OUT = ROOT / "bench" / "results" / "suite.json"
COMMAND = ".venv/bin/python bench/suite.py"
FLOOR = "bare Ray start and stop"


def floor_s(repeats: int, tmp: Path) -> float:
    return statistics.median(
        timed([sys.executable, *FLOORS[FLOOR]], 0, tmp) for _ in range(repeats)
    )


def pytest_run(args: list[str]) -> tuple[float, str]:
    """Wall seconds of ``python -m pytest ARGS`` in the repository (it must pass) and how many
    tests passed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    print("+ pytest", " ".join(args), flush=True)
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}")
    counts = re.findall(r"(\d+) passed", done.stdout)
    return wall, f"{counts[-1]} tests" if counts else "?"


def module_seconds(junit: Path) -> dict[str, float]:
    """Seconds per test module, summed over its tests (both workers), largest first."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit).iter("testcase"):
        seconds[case.get("classname", "?").split(".")[-1]] += float(case.get("time", 0.0))
    return {k: round(v, 1) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="floor measurements each time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        before = floor_s(args.repeats, tmp)
        fast_s, fast_line = pytest_run(["-m", "fast"])
        full_s, full_line = pytest_run([f"--junitxml={tmp / 'junit.xml'}"])
        after = floor_s(args.repeats, tmp)
        modules = module_seconds(tmp / "junit.xml")
    floor = f"{FLOOR} before/after: {before:.2f} / {after:.2f} s"
    report = {
        "machine": machine_info(),
        "floor_s": {"before": round(before, 2), "after": round(after, 2)},
        "fast": {"wall_s": round(fast_s, 1), "pytest": fast_line},
        "full": {"wall_s": round(full_s, 1), "pytest": full_line},
        "worker_s": round(sum(modules.values()), 1),
        "module_s": modules,
    }
    set_headline(
        report,
        [
            {"what": f"pytest -m fast ({fast_line}), goal <= 5 min; {floor}",
             "ours": round(fast_s / 60, 2), "unit": "min", "peer": None, "peer_name": None,
             "command": COMMAND},
            {"what": f"pytest, every tier ({full_line}), goal <= 20 min; {floor}",
             "ours": round(full_s / 60, 2), "unit": "min", "peer": None, "peer_name": None,
             "command": COMMAND},
        ],
    )  # fmt: skip
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fast tier {fast_s / 60:.1f} min, whole suite {full_s / 60:.1f} min; {floor}")


if __name__ == "__main__":
    main()
