"""Benchmark: a long DQN learning run on an Atari game, with its learning curve.

Trains ``rlgen train dqn`` on the game (Atari defaults: Nature CNN, 100k replay, one update per
4 env steps, epsilon 1 -> 0.01 over 250k steps) for a fixed number of env steps, then reads the
run's TensorBoard events and writes:

- bench/results/dqn_atari_long_<game>.json: env steps, wall time, throughput, the last and best
  100-game mean return (unclipped full games), and the curve itself;
- bench/results/dqn_atari_long_<game>.png: the 100-game mean return and the clipped per-life
  training return against env steps.

On a machine with a GPU the Learner uses it without flags. References at 10M env steps:
Breakout ~367, Pong ~20 (CleanRL dqn_atari); Pong passes +18 near 3M steps.

    .venv/bin/python bench/dqn_atari_long.py --env ALE/Breakout-v5 --env-steps 1000000
    .venv/bin/python bench/dqn_atari_long.py --env ALE/Pong-v5 --env-steps 3000000 \\
        --num-envs 8 --set rollout_backend=vector
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from benchkit import draw_curves, pyplot, read_scalars

from runkit.overrides import merge_overrides

OUT = Path(__file__).resolve().parent / "results"


def read_curve(tensorboard_dir: Path, tag: str) -> list[tuple[int, float]]:
    return [(step, value) for step, _, value in read_scalars(tensorboard_dir, tag)]


def plot(curves: dict[str, list[tuple[int, float]]], title: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    draw_curves(ax, curves, "env steps (agent steps, 4 frames each)", "return")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--env-steps", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=None, help="envs per rollout actor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", help="run directory (default: runs/bench-dqn-<game>)")
    parser.add_argument(
        "--plot-only", action="store_true", help="write the curve of the finished run in --output"
    )
    args = parser.parse_args()

    import rlgen

    game = args.env.split("/")[-1].split("-")[0].lower()
    run_dir = Path(args.output or Path("runs") / f"bench-dqn-{game}").resolve()
    if args.plot_only:
        report_run(args, game, run_dir, result_on_disk(run_dir), wall=None)
        return
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.monotonic()
    result = rlgen.train(
        "dqn",
        env=args.env,
        overrides=merge_overrides(None, args.set),
        num_envs_per_env_runner=args.num_envs,
        seed=args.seed,
        stop_reward=sys.float_info.max,  # run the whole budget (a finite number, as required)
        max_env_steps=args.env_steps,
        checkpoint_every=50,
        output=run_dir,
    )
    report_run(args, game, run_dir, rlgen.to_dict(result), wall=time.monotonic() - t0)


def result_on_disk(run_dir: Path) -> dict:
    """result.json of a finished run, else the figures of its newest checkpoint (a run still
    going, or one stopped early)."""
    from algorithms.checkpoints import STATE_FILE, find_checkpoint
    from runkit.rundir import RESULT_FILE, read_json

    if (run_dir / RESULT_FILE).is_file():
        return read_json(run_dir / RESULT_FILE)
    state = read_json(find_checkpoint(run_dir) / STATE_FILE)["state"]
    return {
        "env_steps": state["env_steps"],
        "wall_time_s": state["wall_time_s"],
        "env_steps_per_s": round(state["env_steps"] / state["wall_time_s"], 2),
        "episode_return_mean": state["episode_return_mean"],
        "best_episode_return_mean": state["best"],
        "tensorboard_dir": str(run_dir / "tensorboard"),
    }


def report_run(args: argparse.Namespace, game: str, run_dir: Path, result: dict, wall) -> None:
    """The curve PNG and JSON of a finished run (``--plot-only``: of one already on disk)."""
    wall = result["wall_time_s"] if wall is None else wall
    tb = Path(result["tensorboard_dir"])
    games = read_curve(tb, "episode/return_mean")
    training = read_curve(tb, "episode/training_return_mean")
    OUT.mkdir(parents=True, exist_ok=True)
    png = OUT / f"dqn_atari_long_{game}.png"
    plot(
        {
            "100-game mean return (unclipped, full games)": games,
            "training return per life (clipped), per iteration": training,
        },
        f"DQN on {args.env}: {result['env_steps']:,} env steps, {wall / 3600:.2f} h",
        png,
    )
    report = {
        "env": args.env,
        "env_steps": result["env_steps"],
        "wall_time_s": round(wall, 1),
        "env_steps_per_s": result["env_steps_per_s"],
        "episode_return_mean": result["episode_return_mean"],
        "best_episode_return_mean": result["best_episode_return_mean"],
        "overrides": merge_overrides(None, args.set),
        "num_envs_per_env_runner": args.num_envs,
        "run_dir": str(run_dir),
        "curve_png": str(png),
        "curve": games,
    }
    path = OUT / f"dqn_atari_long_{game}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"[bench dqn long] wrote {path} and {png}", flush=True)


if __name__ == "__main__":
    main()
