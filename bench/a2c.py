"""Benchmark: A2C on this machine, side by side with RLlib's built-in PPO in one run.

1. CartPole-v1 wall time and env steps until the mean return of the last 100 episodes reaches
   475: our A2C (default config, through ``rlgen.train``, seeds 0..7, capped
   at 300k env steps) vs RLlib's PPO with its defaults (seeds 0..1). Medians over the seeds
   that solved it, and how many did. Goal: ours <= 0.5x PPO's wall time.
2. Scaling: sampling throughput with the rollouts in the Algorithm process (0 actors) and with
   1, 2 and 4 rollout actors (the default 16 CartPole envs each, T = 16; 2 CPUs shared among the
   actors), and the fraction of each iteration's wall time spent sampling, in the Learner's
   update, in the weight broadcast, and elsewhere (metrics, bookkeeping). Env steps per second
   of the synchronous rounds and of sampling alone (env steps / time inside sampling).

Writes bench/results/a2c.json.

    .venv/bin/python bench/a2c.py [--only cartpole,scaling] [--seeds 8] [--ppo-seeds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchkit import (
    cartpole_run,
    open_report,
    parts_to_run,
    rllib_cartpole_to_475,
    steps_of,
    timed_calls,
)

OUT = Path(__file__).resolve().parent / "results"
PARTS = ("cartpole", "scaling")


def log(msg: str) -> None:
    print(f"[bench a2c] {msg}", flush=True)


def cartpole_ours(seed: int, max_env_steps: int) -> dict:
    return cartpole_run("a2c", seed, max_env_steps)


def cartpole_ppo(seed: int, time_cap_s: float) -> dict:
    """RLlib's PPO with every training default (lr 5e-5, batch 4000, minibatch 128, 30 epochs,
    lambda 1, clip 0.3, ...), sampled in the Algorithm process like our default."""
    from ray.rllib.algorithms.ppo import PPOConfig

    def make_config(env: str) -> Any:
        return PPOConfig().environment(env).env_runners(num_env_runners=0)

    return rllib_cartpole_to_475(make_config, seed=seed, time_cap_s=time_cap_s)


def summary(runs: list[dict]) -> dict:
    solved = [r for r in runs if r["solved"]]
    if not solved:
        return {"solved": f"0/{len(runs)}"}
    return {
        "solved": f"{len(solved)}/{len(runs)}",
        "median_training_wall_time_s": statistics.median(r["training_wall_time_s"] for r in solved),
        "median_env_steps": statistics.median(r["env_steps"] for r in solved),
    }


def scaling(actors: int, seconds: float) -> dict:
    from algorithms.a2c.algorithm import A2CConfig
    from envs import rllib_env_name

    config = (
        A2CConfig()
        .environment(rllib_env_name("CartPole-v1"))
        # 2 CPUs for up to 4 actors: each reserves its share, or Ray would hold the 3rd back.
        .env_runners(
            num_env_runners=actors,
            # RLlib types it Optional[int]; Ray takes fractional CPUs.
            num_cpus_per_env_runner=min(1.0, 2 / max(actors, 1)),  # type: ignore[arg-type]
        )
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        algo.train()  # warm-up: actors started, first weights synced
        parts: dict[str, float] = {}
        timed_calls(algo, "_sample", parts, "sampling")
        timed_calls(algo.learner_group, "update", parts, "learner update")
        timed_calls(algo.env_runner_group, "sync_weights", parts, "weight broadcast")
        s0, t0 = steps_of(algo.train()), time.monotonic()
        parts.update(dict.fromkeys(parts, 0.0))
        while time.monotonic() - t0 < seconds:
            result = algo.train()
        elapsed, steps = time.monotonic() - t0, steps_of(result) - s0
    finally:
        algo.stop()
    parts["other (metrics, bookkeeping)"] = elapsed - sum(parts.values())
    return {
        "rollout_actors": actors,
        "cpus_per_actor": config.num_cpus_per_env_runner,
        "envs_per_actor": config.num_envs_per_env_runner,
        "steps_per_env_per_round": config.rollout_fragment_length,
        "env_steps_per_s": round(steps / elapsed, 1),
        "sampling_env_steps_per_s": round(steps / parts["sampling"], 1),
        "env_steps": steps,
        "seconds": round(elapsed, 1),
        "time_fraction": {k: round(v / elapsed, 3) for k, v in parts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--seeds", type=int, default=8, help="CartPole seeds, ours")
    parser.add_argument("--ppo-seeds", type=int, default=2, help="CartPole seeds, RLlib PPO")
    parser.add_argument("--max-env-steps", type=int, default=300_000, help="ours, per seed")
    parser.add_argument("--ppo-cap-s", type=float, default=600.0, help="PPO, per seed")
    parser.add_argument("--seconds", type=float, default=30.0, help="per scaling run")
    args = parser.parse_args()
    parts = parts_to_run(args.only, PARTS, parser)
    path = OUT / "a2c.json"
    report, save = open_report(path)

    if "cartpole" in parts:
        log("1. CartPole-v1 to a 100-episode mean of 475: ours vs RLlib PPO (defaults)")
        ours, ppo = [], []
        for seed in range(max(args.seeds, args.ppo_seeds)):
            if seed < args.seeds:
                ours.append(cartpole_ours(seed, args.max_env_steps))
                log(f"ours: {ours[-1]}")
            if seed < args.ppo_seeds:
                ppo.append(cartpole_ppo(seed, args.ppo_cap_s))
                log(f"rllib ppo: {ppo[-1]}")
        s_ours, s_ppo = summary(ours), summary(ppo)
        ratio = None
        if "median_training_wall_time_s" in s_ours and "median_training_wall_time_s" in s_ppo:
            ratio = round(
                s_ours["median_training_wall_time_s"] / s_ppo["median_training_wall_time_s"], 3
            )
        report["cartpole"] = {
            "ours": {"runs": ours, **s_ours},
            "rllib_ppo_defaults": {"runs": ppo, **s_ppo},
            "wall_time_ratio_ours_to_ppo": ratio,
            "goal_ratio": 0.5,
        }
        log(json.dumps({k: v for k, v in report["cartpole"].items() if k != "ours"}))
        save()
    if "scaling" in parts:
        log("2. scaling: rollouts in the Algorithm process, then 1, 2 and 4 rollout actors")
        report["scaling"] = []
        for actors in (0, 1, 2, 4):
            report["scaling"].append(scaling(actors, args.seconds))
            log(json.dumps(report["scaling"][-1]))
            save()
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
