"""Benchmark: the default REINFORCE on CartPole-v1 as a new user runs it, seeds 0-7.

Each seed is ``rlgen train reinforce --env CartPole-v1 --seed S --max-env-steps 200000`` (through
``rlgen.train``: the default config, stop at the env's 475, no evaluation video), and the
figure is the env steps at which the mean return of the last 100 episodes first reached 475.
Env steps to 475 do not depend on the machine's speed (runs sample in the Algorithm process and
are deterministic for a seed), so the figure holds on a loaded machine; the wall times do not.
Goal: a median of at most ``CARTPOLE_DEFAULT_MEDIAN_ENV_STEPS`` (100k) env steps over seeds
0-7 (an unsolved seed counts as more than the budget).

Writes bench/results/reinforce_default.json (or ``--name``.json, for a variant run with
``--set KEY=VALUE``, which is recorded there, or on other seeds with ``--first-seed``).

    .venv/bin/python bench/reinforce_default.py [--seeds 8] [--first-seed 0] [--max-env-steps N]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from benchkit import cartpole_run, open_report

from algorithms.reinforce.expected import CARTPOLE_DEFAULT_MEDIAN_ENV_STEPS

OUT = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[bench reinforce_default] {msg}", flush=True)


def run_seed(seed: int, max_env_steps: int, overrides: dict[str, Any]) -> dict:
    run = cartpole_run("reinforce", seed, max_env_steps, overrides)
    run["env_steps_to_475"] = run["env_steps"] if run["solved"] else None
    return run


def median_env_steps(runs: list[dict]) -> float | None:
    """The median of the env steps to 475 over all seeds, an unsolved seed counting as
    infinitely many; None where the median itself falls on an unsolved seed."""
    steps = [r["env_steps_to_475"] if r["solved"] else math.inf for r in runs]
    median = statistics.median(steps)
    return None if math.isinf(median) else float(median)


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` values as JSON where they parse (numbers, booleans), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=0, help="held-out seeds: e.g. 8")
    parser.add_argument("--max-env-steps", type=int, default=200_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="reinforce_default", help="results file name")
    args = parser.parse_args()
    overrides = parse_set(args.set)
    path = OUT / f"{args.name}.json"
    report, save = open_report(path)

    from algorithms.reinforce.algorithm import ReinforceConfig

    config = ReinforceConfig().training(**overrides)
    log(f"baseline={config.baseline}, advantage normalization {config.normalization()}")
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        runs.append(run_seed(seed, args.max_env_steps, overrides))
        log(f"seed {seed}: {runs[-1]}")
    median = median_env_steps(runs)
    report.update(
        {
            "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
            "command": "rlgen train reinforce --env CartPole-v1 --seed S "
            f"--max-env-steps {args.max_env_steps}",
            "overrides": overrides,
            "baseline": config.baseline,
            "advantage_normalization": config.advantage_normalization,
            "advantage_normalization_applied": config.normalization(),
            "runs": runs,
            "solved": f"{sum(r['solved'] for r in runs)}/{len(runs)}",
            "env_steps_to_475": [r["env_steps_to_475"] for r in runs],
            "median_env_steps_to_475": median,
            "goal_median_env_steps": CARTPOLE_DEFAULT_MEDIAN_ENV_STEPS,
            "goal_met": median is not None and median <= CARTPOLE_DEFAULT_MEDIAN_ENV_STEPS,
        }
    )
    save()
    log(json.dumps({k: report[k] for k in ("env_steps_to_475", "median_env_steps_to_475")}))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
