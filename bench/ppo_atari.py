"""Benchmark: PPO and A2C on Breakout for the same wall-time budget of this machine (40 minutes
each by default), seed 0, default configs: the mean return of the last 100 full games at the
end, and the learning curves.

Each algorithm trains as its own ``rlgen train`` process, started from the repository root with
the Atari preset (which ``rlgen`` applies to ``ALE/`` envs) and no evaluation video: one after
the other, each with both cores (the default), or with ``--side-by-side`` both at once, sharing
them. Then each run's result.json and TensorBoard give:

- bench/results/ppo_atari.json: the machine, the mode and budget, and per algorithm the env
  steps, wall time, last and best 100-game mean return (unclipped full games), and the curves of
  the 100-game mean and of the clipped per-life training return, each point
  ``[env steps, seconds since the run's TensorBoard opened, value]``;
- bench/results/ppo_atari.png: the 100-game mean return against wall time and against env steps.

The JSON holds this invocation's runs only. Run directories go to a scratch directory, deleted
at the end (``--keep DIR`` keeps them, with each run's log, in DIR).

    .venv/bin/python bench/ppo_atari.py                  # 2 x 40 min, one after the other
    .venv/bin/python bench/ppo_atari.py --side-by-side   # 40 min, both at once
    .venv/bin/python bench/ppo_atari.py --minutes 1 --side-by-side --keep /tmp/pa_smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import draw_curves, machine_info, parts_to_run, pyplot, read_scalars, set_headline

from algorithms.common import metrics as M
from runkit.rundir import RESULT_FILE, read_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
COMMAND = ".venv/bin/python bench/ppo_atari.py"
ENV = "ALE/Breakout-v5"
SEED = 0
ALGORITHMS = ("ppo", "a2c")
NAMES = {"ppo": "PPO", "a2c": "A2C"}
MODES = {False: "one after the other", True: "side by side"}
RETURN_TAG = M.TB_TAGS["episode_return_mean"]  # last 100 games, unclipped
TRAINING_TAG = M.TB_TAGS["training_return_mean"]  # per iteration, clipped, per life
FIGURES = (M.ENV_STEPS, M.WALL_TIME_S, M.EPISODE_RETURN_MEAN, M.BEST_EPISODE_RETURN_MEAN)
LOG_TAIL = 30  # lines of a failed run's log shown


def log(msg: str) -> None:
    print(f"[bench ppo_atari] {msg}", flush=True)


def train_command(algorithm: str, budget_s: float, run_dir: Path) -> list[str]:
    """``rlgen train`` of one algorithm on Breakout for ``budget_s`` seconds, defaults
    otherwise."""
    return [
        sys.executable, "rlgen.py", "train", algorithm, "--env", ENV, "--seed", str(SEED),
        "--time-budget-s", f"{budget_s:g}", "--video-frames", "0", "--output", str(run_dir),
    ]  # fmt: skip


def start(algorithm: str, budget_s: float, root: Path) -> tuple[subprocess.Popen, float]:
    """Start one training process, its output to ``root/<algorithm>.log``; the process and its
    start time."""
    command = train_command(algorithm, budget_s, root / algorithm)
    log(f"{algorithm}: {shlex.join(command)}")
    with open(root / f"{algorithm}.log", "w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return proc, time.monotonic()


def finish(algorithm: str, proc: subprocess.Popen, t0: float, root: Path) -> float:
    """The wall time, shell to exit, of a training process that has ended. A failed run ends
    the benchmark with the end of its log."""
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        lines = (root / f"{algorithm}.log").read_text(errors="replace").splitlines()
        print("\n".join(lines[-LOG_TAIL:]), file=sys.stderr)
        raise SystemExit(
            f"bench/ppo_atari.py: rlgen train {algorithm} exited with {proc.returncode}"
        )
    log(f"{algorithm}: done in {wall:.0f} s")
    return wall


def wait_all(running: dict[str, tuple[subprocess.Popen, float]], root: Path) -> dict[str, float]:
    """Wait for the running processes, taking each one's wall time when it ends (to the
    second), whichever ends first."""
    walls: dict[str, float] = {}
    while running:
        time.sleep(1)
        for algorithm, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                del running[algorithm]
                walls[algorithm] = finish(algorithm, proc, t0, root)
    return walls


def train_all(
    algorithms: list[str], budget_s: float, root: Path, side_by_side: bool
) -> dict[str, float]:
    """Each algorithm's process wall time, the runs made one after the other or all at once."""
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    walls: dict[str, float] = {}
    try:
        for algorithm in algorithms:
            running[algorithm] = start(algorithm, budget_s, root)
            if not side_by_side:
                walls |= wait_all(running, root)
        walls |= wait_all(running, root)
    finally:
        for proc, _ in running.values():  # only after a failure or an interrupt
            proc.terminate()
            proc.wait()
    return walls


def finite(value: float) -> float | None:
    """JSON has no NaN or infinity: a 100-game mean before the first game is None."""
    return value if math.isfinite(value) else None


def curve(tensorboard_dir: Path, tag: str) -> list[list[float]]:
    """``[env steps, seconds since the run's TensorBoard opened, value]`` per iteration."""
    points = read_scalars(tensorboard_dir, tag)
    return [[step, round(wall, 1), round(value, 3)] for step, wall, value in points]


def figures(run_dir: Path, process_wall_s: float) -> dict[str, Any]:
    """What one finished run gives: result.json's figures and the TensorBoard curves."""
    result = read_json(run_dir / RESULT_FILE)
    tensorboard = run_dir / "tensorboard"
    out: dict[str, Any] = {key: finite(result[key]) for key in FIGURES}
    out.update(
        env_steps_per_s=result[M.ENV_STEPS_PER_S],
        stop_reason=result["stop_reason"],
        process_wall_time_s=round(process_wall_s, 1),
        return_mean_curve=curve(tensorboard, RETURN_TAG),
        training_return_mean_curve=curve(tensorboard, TRAINING_TAG),
    )
    return out


def reproduce(args: argparse.Namespace) -> str:
    """The command that makes these figures again (the scratch directory aside)."""
    command = COMMAND
    if args.minutes != 40:
        command += f" --minutes {args.minutes:g}"
    if args.algorithms != ",".join(ALGORITHMS):
        command += f" --algorithms {args.algorithms}"
    return command + (" --side-by-side" if args.side_by_side else "")


def headline(report: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """PPO's final 100-game mean, A2C's beside it; none without a PPO figure."""
    runs = report["runs"]
    ours = runs.get("ppo", {}).get(M.EPISODE_RETURN_MEAN)
    if ours is None:
        return []
    peer = runs.get("a2c", {}).get(M.EPISODE_RETURN_MEAN) or None  # 0 gives no ratio
    what = f"PPO Breakout, {args.minutes:g} min of this machine, seed 0: final 100-game mean"
    if args.side_by_side:
        what += " (side by side with A2C, sharing the cores)"
    return [{
        "what": what, "ours": ours, "unit": "return", "peer": peer,
        "peer_name": None if peer is None else "A2C, defaults, same budget and mode",
        "command": reproduce(args),
    }]  # fmt: skip


def plot(report: dict[str, Any], path: Path) -> None:
    """The 100-game mean return against wall-time minutes (left) and env steps (right)."""
    runs = report["runs"]
    by_minutes = {
        NAMES[a]: [(p[1] / 60, p[2]) for p in run["return_mean_curve"]] for a, run in runs.items()
    }
    by_steps = {
        NAMES[a]: [(p[0], p[2]) for p in run["return_mean_curve"]] for a, run in runs.items()
    }
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    ylabel = "mean return of the last 100 games (unclipped)"
    draw_curves(left, by_minutes, "wall time (minutes since training began)", ylabel)
    draw_curves(right, by_steps, "env steps (agent steps, 4 frames each)", "")
    for ax in (left, right):
        ax.set_xlim(left=0)
    cores = "sharing" if report["side_by_side"] else "each with"
    fig.suptitle(
        f"Breakout, seed 0, defaults: {report['minutes']:g} min of this machine per algorithm, "
        f"{report['mode']} ({cores} {report['machine']['cpus']} cores)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0, help="budget per algorithm")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated")
    parser.add_argument("--side-by-side", action="store_true", help="train all at once")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the run directories here")
    args = parser.parse_args()
    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        parser.error(f"--minutes {args.minutes:g}: must be a positive number")
    algorithms = parts_to_run(args.algorithms, ALGORITHMS, parser)
    if args.keep is not None:  # refused now, not after the first run's 40 minutes
        taken = [a for a in algorithms if (args.keep / a).exists()]
        if taken:
            parser.error(f"--keep {args.keep}: holds a run of {', '.join(taken)} already")
    return args, algorithms


def main() -> None:
    args, algorithms = parse_args()
    root = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="ppo_atari-"))
    root.mkdir(parents=True, exist_ok=True)
    budget_s = args.minutes * 60
    log(f"{', '.join(algorithms)} on {ENV}, {budget_s:g} s each, {MODES[args.side_by_side]}")
    try:
        walls = train_all(algorithms, budget_s, root, args.side_by_side)
        runs = {a: figures(root / a, walls[a]) for a in algorithms}
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "date": datetime.now(UTC).date().isoformat(),
        "command": shlex.join([os.path.relpath(sys.executable), *sys.argv]),
        "env": ENV,
        "seed": SEED,
        "mode": MODES[args.side_by_side],
        "side_by_side": args.side_by_side,
        "minutes": args.minutes,
        "budget_s": budget_s,
        "curve_columns": ["env_steps", "seconds_since_tensorboard_opened", "value"],
        "runs": runs,
    }
    rows = headline(report, args)
    if rows:
        set_headline(report, rows, report["date"])
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ppo_atari.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, path.with_suffix(".png"))
    for algorithm, run in runs.items():
        summary = {k: v for k, v in run.items() if not k.endswith("_curve")}
        log(f"{algorithm}: {json.dumps(summary)}")
    log(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
