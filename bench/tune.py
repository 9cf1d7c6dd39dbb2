"""Tune's overhead: the same short REINFORCE runs (seeds 0..N-1, CartPole-v1, default config)
as one Tune experiment (two trials at a time on 2 cores) and back to back through the CLI, in
one run on one machine. Reports both wall times, their ratio, and whether every seed's result
(env steps, final return) is the same either way.

    .venv/bin/python bench/tune.py [--seeds 8] [--max-env-steps 10000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serial_cli(seeds: int, max_env_steps: int, root: Path) -> tuple[float, dict[int, dict]]:
    """One ``rlgen train`` process per seed, one after the other, as a user would."""
    results = {}
    t0 = time.monotonic()
    for seed in range(seeds):
        out = root / f"cli_{seed}"
        cmd = [
            sys.executable, str(ROOT / "rlgen.py"), "train", "reinforce", "--env", "CartPole-v1",
            "--seed", str(seed), "--max-env-steps", str(max_env_steps), "--video-frames", "0",
            "--output", str(out),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        results[seed] = json.loads((out / "result.json").read_text())
    return time.monotonic() - t0, results


def as_tune(seeds: int, max_env_steps: int, root: Path) -> tuple[float, dict[int, dict]]:
    """The same runs as one experiment: the seed is the only searched key."""
    script = f"""
import dataclasses, json, sys
from ray import tune
import rlgen, tune_configs
exp = dataclasses.replace(
    tune_configs.load_experiment("reinforce_cartpole"), name="reinforce_cartpole_seeds",
    space={{"seed": tune.grid_search(list(range({seeds})))}}, num_samples=1,
    max_env_steps={max_env_steps}, grace_fraction=1.0,
)
rlgen.tune(exp, output={str(root / "tune")!r})
"""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, cwd=ROOT)
    wall = time.monotonic() - t0
    summary = json.loads((root / "tune" / "results.json").read_text())
    results = {}
    for trial in summary["trials"]:
        run = root / "tune" / "trials" / trial["trial"]
        results[int(trial["config"]["seed"])] = json.loads((run / "result.json").read_text())
    return wall, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--max-env-steps", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tune_wall, tune_results = as_tune(args.seeds, args.max_env_steps, Path(d))
        cli_wall, cli_results = serial_cli(args.seeds, args.max_env_steps, Path(d))
    same = {
        seed: (
            tune_results[seed]["env_steps"] == cli_results[seed]["env_steps"]
            and tune_results[seed]["episode_return_mean"]
            == cli_results[seed]["episode_return_mean"]
        )
        for seed in range(args.seeds)
    }
    figures = {
        "runs": args.seeds,
        "max_env_steps_per_run": args.max_env_steps,
        "tune_wall_s": round(tune_wall, 1),
        "serial_cli_wall_s": round(cli_wall, 1),
        "tune_over_serial_cli": round(tune_wall / cli_wall, 3),
        "same_result_per_seed": same,
        "per_seed": {
            seed: {
                "tune": {k: tune_results[seed][k] for k in ("env_steps", "episode_return_mean")},
                "cli": {k: cli_results[seed][k] for k in ("env_steps", "episode_return_mean")},
            }
            for seed in range(args.seeds)
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune_overhead.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: figures[k]
                for k in (
                    "tune_wall_s",
                    "serial_cli_wall_s",
                    "tune_over_serial_cli",
                    "same_result_per_seed",
                )
            }
        )
    )


if __name__ == "__main__":
    main()
