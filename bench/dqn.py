"""Benchmark: DQN against RLlib's own DQN and against the bare compute, side by side in one run.

1. Replay memory per Atari transition (84x84, 4-frame stacks): our FrameReplay (one uint8 frame
   per transition, stacked at sample time) vs RLlib's own Atari DQN path (its Atari wrapper with
   an env-side 4-frame stack, its episode replay buffer), both as the growth of this process's
   resident memory per env step, ours also as the bytes the replay arrays hold.
2. Atari training throughput (Breakout, batch 32, one gradient step per 4 env steps, after
   learning starts): ours vs RLlib's built-in DQN with the same settings vs the compute limit,
   i.e. the same gradient steps and per-step action forwards of the same Nature CNN in a bare
   PyTorch loop. Ours also broken down into sampling / replay add / replay sample / update /
   weight sync / the rest (metrics, bookkeeping).
3. Sampling throughput of one rollout actor (preprocessing, stacking, policy forward) vs the
   preset env stepped with random actions and no policy, in the same run; the Python wrappers
   with 1 and 8 envs and ale-py's C++ vector backend with 8 and 32 envs.
4. CartPole-v1 wall time and env steps to a 100-episode mean of 475: ours (default config, a
   few seeds) vs RLlib's built-in DQN with comparable settings.

Writes bench/results/dqn.json. Parts 1-3 are measured in bench/dqn_atari_parts.py, part 4 here.

    .venv/bin/python bench/dqn.py [--only memory,throughput,sampling,cartpole] [--seconds 60]

(``--only cartpole_rllib`` reruns RLlib's CartPole run alone, next to our runs on file.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchkit import cartpole_run, open_report, parts_to_run, rllib_cartpole_to_475
from dqn_atari_parts import (
    memory_ours,
    memory_rllib,
    sampling_actor,
    sampling_raw,
    throughput_compute_limit,
    throughput_ours,
    throughput_rllib,
)

OUT = Path(__file__).resolve().parent / "results"
PARTS = ("memory", "throughput", "sampling", "cartpole", "cartpole_rllib")


def log(msg: str) -> None:
    print(f"[bench dqn] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# 4. CartPole-v1 to 475


def cartpole_ours(seed: int, max_env_steps: int) -> dict:
    return cartpole_run("dqn", seed, max_env_steps)


def cartpole_rllib(seed: int, time_cap_s: float) -> dict:
    """RLlib's DQN with the settings of ours where it has them: lr 5e-4, batch 64, two updates
    per 4 env steps (replay ratio 0.5), 3-step double dueling DQN, uniform replay of 50k,
    epsilon 1 -> 0.02 over 10k steps, 1k learning starts, a 128-128 MLP, the target synced
    every 500 env steps (our 250 gradient steps), and the same criterion: the mean return of
    the last 100 episodes."""
    from ray.rllib.algorithms.dqn import DQNConfig as RLlibDQNConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    def make_config(env: str) -> Any:
        return (
            RLlibDQNConfig()
            .environment(env)
            .env_runners(num_env_runners=0, rollout_fragment_length=4)
            .training(
                lr=5e-4,
                train_batch_size_per_learner=64,
                training_intensity=64 * 0.5,
                num_steps_sampled_before_learning_starts=1_000,
                n_step=3,
                double_q=True,
                dueling=True,
                target_network_update_freq=500,
                epsilon=[(0, 1.0), (10_000, 0.02)],
                replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 50_000},
            )
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[128, 128]))
            .reporting(min_sample_timesteps_per_iteration=200)
        )

    return rllib_cartpole_to_475(make_config, seed=seed, time_cap_s=time_cap_s)


# --------------------------------------------------------------------------------------------


def part_memory(memory_steps: int) -> dict:
    log("1. replay memory per Atari transition")
    # Ours is cheap to fill: 10x the transitions, so allocator noise weighs less.
    ours, rllib = memory_ours(10 * memory_steps), memory_rllib(memory_steps)
    part = {
        "ours": ours,
        "rllib": rllib,
        "goal_bytes": 7.5 * 1024,
        "ratio_ours_rss_to_rllib_rss": round(
            ours["rss_growth_bytes_per_transition"] / rllib["rss_growth_bytes_per_env_step"], 4
        ),
    }
    log(json.dumps(part))
    return part


def part_throughput(seconds: float) -> dict:
    log("2. Atari training throughput (Breakout, batch 32, 1 update / 4 env steps)")
    ours = throughput_ours(seconds)
    log(f"ours: {ours}")
    limit = throughput_compute_limit()
    log(f"compute limit: {limit}")
    rllib = throughput_rllib(seconds)
    log(f"rllib: {rllib}")
    ours8 = throughput_ours(seconds, num_envs=8, backend="vector")
    log(f"ours, 8 envs on the vector backend: {ours8}")
    limit8 = throughput_compute_limit(num_envs=8)
    log(f"compute limit, 8 envs: {limit8}")
    return {
        "ours": ours,
        "rllib": rllib,
        "compute_limit": limit,
        "ours_over_rllib": round(ours["env_steps_per_s"] / rllib["env_steps_per_s"], 2),
        "ours_over_limit": round(ours["env_steps_per_s"] / limit["env_steps_per_s"], 3),
        "ours_8_vector_envs": ours8,
        "compute_limit_8_envs": limit8,
        "ours_8_vector_envs_over_limit": round(
            ours8["env_steps_per_s"] / limit8["env_steps_per_s"], 3
        ),
        "goals": {"ours_over_rllib": 10, "ours_over_limit": 0.8},
    }


def part_sampling() -> dict:
    log("3. sampling throughput of one rollout actor")
    raw = sampling_raw(3_000)
    actors = [
        sampling_actor(3_000, num_envs=1, backend="python"),
        sampling_actor(4_000, num_envs=8, backend="python"),
        sampling_actor(8_000, num_envs=8, backend="vector"),
        sampling_actor(16_000, num_envs=32, backend="vector"),
    ]
    for a in actors:
        a["over_raw"] = round(a["env_steps_per_s"] / raw["env_steps_per_s"], 3)
    part = {"raw_env_no_policy": raw, "actor": actors, "goal_over_raw": 0.8}
    log(json.dumps(part))
    return part


def part_cartpole(args: argparse.Namespace, parts: set[str] | list[str], report: dict) -> dict:
    """Ours (``cartpole``; else our runs already on file in ``report``) and RLlib's."""
    log("4. CartPole-v1 to a 100-episode mean of 475")
    torch.set_num_threads(1)  # what our Learner picks for an MLP; RLlib's run gets it too
    if "cartpole" in parts:
        ours_runs = [cartpole_ours(seed, 150_000) for seed in range(args.seeds)]
    else:  # cartpole_rllib: rerun RLlib's side only, next to our runs already on file
        ours_runs = report["cartpole"]["ours"]
    log(f"ours: {ours_runs}")
    rllib_run = cartpole_rllib(0, args.rllib_cartpole_cap_s)
    log(f"rllib: {rllib_run}")
    ours_median = float(np.median([r["training_wall_time_s"] for r in ours_runs]))
    return {
        "ours": ours_runs,
        "rllib": rllib_run,
        "ours_median_wall_time_s": ours_median,
        "ours_over_rllib_wall_time": round(ours_median / rllib_run["training_wall_time_s"], 3),
        "goal": 0.3,
        "note": "RLlib's time is a lower bound when it did not solve within the cap",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--seconds", type=float, default=60.0, help="per throughput run")
    parser.add_argument("--memory-steps", type=int, default=3_000)
    parser.add_argument("--seeds", type=int, default=2, help="CartPole seeds for ours")
    parser.add_argument("--rllib-cartpole-cap-s", type=float, default=900.0)
    args = parser.parse_args()
    parts = parts_to_run(args.only, PARTS, parser)
    path = OUT / "dqn.json"
    report, save = open_report(path)

    if "memory" in parts:
        report["memory"] = part_memory(args.memory_steps)
        save()
    if "throughput" in parts:
        report["throughput"] = part_throughput(args.seconds)
        save()
    if "sampling" in parts:
        report["sampling"] = part_sampling()
        save()
    if "cartpole" in parts or "cartpole_rllib" in parts:
        report["cartpole"] = part_cartpole(args, parts, report)
        save()
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
