"""Benchmark: many rollout actors on few cores (oversubscribed), REINFORCE and A2C.

Each algorithm trains on CartPole-v1 for a fixed number of env steps with 0, 2 and 8 rollout
actors on this machine's CPUs (8 actors on 2 cores: each asks for a quarter of a CPU, so Ray
places all of them). Reported per run: whether it completed (no deadlock, within the time
cap), wall time, env steps per second over the whole run (rounds of sampling, update and
weight broadcast), the time until the first iteration (actor start-up), and the mean return
of the last 100 games at the end. Writes bench/results/rollout_load.json.

    .venv/bin/python bench/rollout_load.py [--actors 0,2,8] [--steps 40000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[rollout_load] {msg}", file=sys.stderr, flush=True)


def one_run(algorithm: str, actors: int, steps: int, cap_s: float, out: Path) -> dict:
    import rlgen

    cpus = os.cpu_count() or 1
    overrides = {}
    if actors:
        overrides["num_cpus_per_env_runner"] = min(1.0, cpus / actors)
    first: list[float] = []
    t0 = time.monotonic()

    def on_report(report: object) -> bool:
        if not first:
            first.append(time.monotonic() - t0)
        return False

    result: Any = rlgen.train(
        algorithm, env="CartPole-v1", num_env_runners=actors, seed=0, max_env_steps=steps,
        time_budget_s=cap_s, stop_reward=1e9, video_frames=0, overrides=overrides,
        output=out / f"{algorithm}-{actors}", on_report=on_report,
    )  # fmt: skip
    wall = time.monotonic() - t0
    return {
        "actors": actors,
        "cpus_per_actor": overrides.get("num_cpus_per_env_runner", 0),
        "completed": result.stop_reason == "max_env_steps",
        "stop_reason": result.stop_reason,
        "env_steps": result.env_steps,
        "wall_s": round(wall, 1),
        "first_iteration_s": round(first[0], 1) if first else None,
        "env_steps_per_s": result.env_steps_per_s,
        "return_last_100_games": round(result.episode_return_mean, 1),
    }


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", default="0,2,8")
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--cap-s", type=float, default=600.0, help="time cap per run")
    args = parser.parse_args()
    report: dict = {"machine": f"{os.cpu_count()} CPU cores", "env_steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in ("reinforce", "a2c"):
            report[algorithm] = []
            for actors in (int(a) for a in args.actors.split(",")):
                log(f"{algorithm} with {actors} rollout actors ...")
                row = one_run(algorithm, actors, args.steps, args.cap_s, Path(tmp))
                log(json.dumps(row))
                report[algorithm].append(row)
    OUT.mkdir(exist_ok=True)
    (OUT / "rollout_load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
