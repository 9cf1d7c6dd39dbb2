"""Benchmark: PPO against Stable-Baselines3's PPO (its tuned zoo settings), in one run here.

1. CartPole-v1 until the mean return of the last 100 episodes reaches 475, seeds 0..N-1:
   ``rlgen train ppo``, default config (capped at 300k env steps), vs SB3's PPO with the zoo's
   settings (8 envs x 32 steps, 20 epochs of one minibatch of 256, gamma 0.98, GAE 0.8, Adam
   1e-3 and clip 0.2 linear to 0 at 100k) and ``learn(100_000)``, stopped by a callback at the
   same criterion. Each run is a process of its own, the first of each seed alternating; timed
   in training (result.json's ``wall_time_s``; inside ``learn()``) and shell to exit. Medians
   over all seeds (an unsolved run counts at its cap). Goals: rlgen solves every seed; its
   median training time <= 0.5x SB3's, its whole process <= 0.75x.
2. Breakdown of one update (default config, one process), ms: ``_sample``, the Learner's
   ``batch_from_episodes`` (GAE, old policy) and ``_update`` (the epochs), RLlib's structure
   around them, ``broadcast_weights``; against the same epochs in a bare PyTorch loop.

Writes bench/results/ppo.json. Needs the ``bench`` extra (``pip install -e ".[bench]"``):
    .venv/bin/python bench/ppo.py [--only cartpole,breakdown] [--seeds 8] [--iterations 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import open_report, parts_to_run, set_headline, timed_calls

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("cartpole", "breakdown")
COMMAND = ".venv/bin/python bench/ppo.py"
ENV = "CartPole-v1"
TARGET = 475.0  # CartPole-v1's reward_threshold, over the last 100 episodes
WINDOW = 100
SB3_TIMESTEPS = 100_000  # the zoo's n_timesteps: its linear schedules reach 0 here
GOAL_TRAINING_RATIO, GOAL_PROCESS_RATIO = 0.5, 0.75


def log(msg: str) -> None:
    print(f"[bench ppo] {msg}", flush=True)


# -- 1. CartPole-v1, one process per run -------------------------------------------------------


def sb3_cartpole(seed: int) -> dict:
    """SB3's PPO with the zoo's CartPole-v1 settings (hyperparams/ppo.yml), stopped as rlgen's
    run is, on the mean return of the last 100 finished episodes (Monitor's). In a process of
    its own (``--sb3-seed``); torch's thread counts left at their defaults."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    def linear(start: float) -> Callable[[float], float]:
        """The zoo's ``lin_<start>``: ``start`` x the fraction of learn()'s steps left."""
        return lambda progress_remaining: progress_remaining * start

    class StopAtTarget(BaseCallback):
        def _init_callback(self) -> None:
            self.returns: list[float] = []  # of every finished episode, as Monitor counts it

        def mean(self) -> float:
            last = self.returns[-WINDOW:]
            return sum(last) / len(last) if last else float("nan")

        def _on_step(self) -> bool:
            infos = self.locals["infos"]
            self.returns += [float(i["episode"]["r"]) for i in infos if "episode" in i]
            return not self.mean() >= TARGET  # False stops learn()

    env = make_vec_env(ENV, n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
        ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed,
        device="cpu", verbose=0,
    )  # fmt: skip
    stop = StopAtTarget()
    t0 = time.monotonic()
    model.learn(total_timesteps=SB3_TIMESTEPS, callback=stop)
    wall = time.monotonic() - t0
    return {
        "seed": seed, "solved": stop.mean() >= TARGET, "env_steps": int(model.num_timesteps),
        "training_wall_time_s": round(wall, 2), "episodes": len(stop.returns),
        "last_100_episode_return_mean": round(stop.mean(), 1),
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip


def timed_process(argv: list[str]) -> tuple[float, str]:
    """Run ``argv`` from the repository root, without this process's RAY_* variables (each run
    starts its own local Ray); its wall time, shell to exit, and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    t0 = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)}: exit {done.returncode}:\n{done.stderr[-4000:]}")
    return wall, done.stdout


def rlgen_run(seed: int) -> dict:
    """``rlgen train ppo`` on CartPole-v1 (default config, no evaluation video)."""
    from algorithms.ppo.expected import CARTPOLE_MAX_ENV_STEPS

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        wall, _ = timed_process([
            sys.executable, str(ROOT / "rlgen.py"), "train", "ppo", "--env", ENV,
            "--seed", str(seed), "--max-env-steps", str(CARTPOLE_MAX_ENV_STEPS),
            "--video-frames", "0", "--output", str(run_dir),
        ])  # fmt: skip
        result = json.loads((run_dir / "result.json").read_text())
    return {
        "seed": seed, "solved": result["solved"], "env_steps": result["env_steps"],
        "training_wall_time_s": result["wall_time_s"], "process_wall_time_s": round(wall, 2),
        "stop_reason": result["stop_reason"],
    }  # fmt: skip


def sb3_run(seed: int) -> dict:
    """``sb3_cartpole`` in a process of its own: this script with ``--sb3-seed``."""
    wall, stdout = timed_process([sys.executable, __file__, f"--sb3-seed={seed}"])
    out = json.loads(stdout.strip().splitlines()[-1])
    out["process_wall_time_s"] = round(wall, 2)
    return out


def summary(runs: list[dict]) -> dict:
    """Seeds solved, and medians over every run (solved or not)."""
    keys = ("training_wall_time_s", "process_wall_time_s", "env_steps")
    medians = {f"median_{k}": statistics.median(r[k] for r in runs) for k in keys}
    return {"solved": f"{sum(r['solved'] for r in runs)}/{len(runs)}", **medians}


def cartpole(seeds: int) -> dict:
    from importlib.metadata import version

    runners = {"rlgen": rlgen_run, "sb3": sb3_run}
    runs: dict[str, list[dict]] = {"rlgen": [], "sb3": []}
    for seed in range(seeds):
        for name in ("rlgen", "sb3") if seed % 2 == 0 else ("sb3", "rlgen"):
            runs[name].append(runners[name](seed))
            log(f"{name}: {runs[name][-1]}")
    ours, sb3 = summary(runs["rlgen"]), summary(runs["sb3"])
    ratio = {k: round(ours[k] / sb3[k], 3) for k in ours if k.startswith("median_")}
    return {
        "rlgen": {**ours, "runs": runs["rlgen"]},
        "sb3": {**sb3, "version": version("stable-baselines3"), "runs": runs["sb3"]},
        "training_wall_time_ratio_rlgen_to_sb3": ratio["median_training_wall_time_s"],
        "goal_training_ratio": GOAL_TRAINING_RATIO,
        "process_wall_time_ratio_rlgen_to_sb3": ratio["median_process_wall_time_s"],
        "goal_process_ratio": GOAL_PROCESS_RATIO,
        "env_steps_ratio_rlgen_to_sb3": ratio["median_env_steps"],
        "goal_rlgen_solved": f"{seeds}/{seeds}",
    }


# -- 2. Breakdown of one update, in this process -----------------------------------------------


def count_calls(obj: Any, method: str, counts: dict[str, int], key: str) -> None:
    """Make ``obj.method`` add 1 to ``counts[key]`` on each call."""
    inner = getattr(obj, method)
    counts[key] = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        counts[key] += 1
        return inner(*args, **kwargs)

    setattr(obj, method, wrapper)


def floor_ms(updates: int, config: Any) -> float:
    """ms per bare PyTorch PPO update (no Ray, no RLlib): ``num_epochs`` epochs over one batch of
    random CartPole rows, each shuffled into ``round(batch / minibatch_size)`` minibatches, one
    step each: two tanh MLPs, advantages normalized per minibatch, clipped surrogate +
    ``vf_coeff`` x squared value error, global-norm clip, Adam."""
    from itertools import pairwise

    import torch
    from torch import nn

    epochs, sizes = config.num_epochs, [4, *config.model_hiddens]
    rows = config.rollout_fragment_length * config.num_envs_per_env_runner
    parts = max(1, round(rows / config.minibatch_size))

    def mlp(out: int) -> nn.Sequential:
        torso = [m for i, o in pairwise(sizes) for m in (nn.Linear(i, o), nn.Tanh())]
        return nn.Sequential(*torso, nn.Linear(sizes[-1], out))

    torch.manual_seed(0)
    pi, vf = mlp(2), mlp(1)
    params = [*pi.parameters(), *vf.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    obs_B4, act_B = torch.randn(rows, 4), torch.randint(0, 2, (rows,))
    adv_B, ret_B = torch.randn(rows), torch.randn(rows)
    with torch.no_grad():
        old_logp_B = torch.log_softmax(pi(obs_B4), -1).gather(1, act_B[:, None]).squeeze(1)

    def update() -> None:
        for _ in range(epochs):
            for idx in torch.randperm(rows).chunk(parts):
                step(*(t[idx] for t in (obs_B4, act_B, adv_B, ret_B, old_logp_B)))

    def step(obs: torch.Tensor, act: torch.Tensor, adv: torch.Tensor, ret: torch.Tensor,
             old: torch.Tensor) -> None:  # fmt: skip
        adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
        logp = torch.log_softmax(pi(obs), -1).gather(1, act[:, None]).squeeze(1)
        ratio = torch.exp(logp - old)
        policy_loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()  # clip 0.2
        value_loss = (vf(obs).squeeze(1) - ret).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        (policy_loss + config.vf_coeff * value_loss).backward()
        nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()

    for _ in range(2):  # warm-up
        update()
    t0 = time.perf_counter()
    for _ in range(updates):
        update()
    return 1000 * (time.perf_counter() - t0) / updates


def breakdown(iterations: int, warmup: int = 2) -> dict:
    import torch

    from algorithms.ppo.algorithm import PPOConfig
    from algorithms.rllib_compat import local_learner
    from envs import rllib_env_name

    # CartPole-v1 registered as ``rlgen train`` registers it (with rlgen's wrappers).
    config = PPOConfig().environment(rllib_env_name(ENV)).debugging(seed=0)
    algo = config.build_algo()
    try:
        for _ in range(warmup):
            algo.train()
        learner = local_learner(algo.learner_group)
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        timed_calls(algo, "_sample", totals, "rollout")
        timed_calls(learner, "batch_from_episodes", totals, "batch_from_episodes")
        timed_calls(learner, "_update", totals, "_update")
        timed_calls(algo, "update_learners", totals, "update_learners")
        timed_calls(algo, "broadcast_weights", totals, "broadcast_weights")
        count_calls(learner, "_update", counts, "updates")
        t0 = time.perf_counter()
        for _ in range(iterations):
            algo.train()
        totals["train_iteration"] = time.perf_counter() - t0
        threads = torch.get_num_threads()
    finally:
        algo.stop()
    updates = counts["updates"]
    ms = {k: 1000 * v / updates for k, v in totals.items()}
    ms["rllib_update_structure"] = ms["update_learners"] - ms["batch_from_episodes"] - ms["_update"]
    outside = ms["rollout"] + ms["update_learners"] + ms["broadcast_weights"]
    ms["other"] = ms["train_iteration"] - outside
    floor = floor_ms(updates, config)
    return {
        "iterations": iterations, "warmup_iterations": warmup, "updates": updates,
        "env_steps_per_update": config.rollout_fragment_length * config.num_envs_per_env_runner,
        "epochs": config.num_epochs, "minibatch_size": config.minibatch_size,
        "torch_threads": threads,
        "ms_per_update": {k: round(v, 2) for k, v in ms.items()},
        "floor_ms_per_update": round(floor, 2),
        "update_ratio_to_floor": round(ms["_update"] / floor, 2),
    }  # fmt: skip


def headline(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "cartpole" in report:
        c = report["cartpole"]
        ours, sb3, n = c["rlgen"], c["sb3"], len(c["rlgen"]["runs"])
        what = (
            f"PPO (rlgen defaults; SB3: zoo settings), CartPole-v1 until the mean return of the "
            f"last 100 episodes reaches 475, {f'seeds 0-{n - 1}' if n > 1 else 'seed 0'} "
            f"(solved: rlgen {ours['solved']}, SB3 {sb3['solved']}): median "
        )
        peer = f"Stable-Baselines3 {sb3['version']} PPO, rl-baselines3-zoo settings"
        for figure, key, unit in (
            (f"training wall time (goal <= {GOAL_TRAINING_RATIO}x)", "training_wall_time_s", "s"),
            (f"time, shell to exit (goal <= {GOAL_PROCESS_RATIO}x)", "process_wall_time_s", "s"),
            ("env steps", "env_steps", "env steps"),
        ):
            rows.append({
                "what": what + figure, "ours": ours[f"median_{key}"], "unit": unit,
                "peer": sb3[f"median_{key}"], "peer_name": peer,
                "command": COMMAND,
            })  # fmt: skip
    if "breakdown" in report:
        b = report["breakdown"]
        rows.append({
            "what": f"PPO, default config, CartPole-v1: the Learner's _update ({b['epochs']} "
            f"epochs of {b['minibatch_size']}-row minibatches), per update",
            "ours": b["ms_per_update"]["_update"], "unit": "ms", "peer": b["floor_ms_per_update"],
            "peer_name": "bare PyTorch loop, same epochs, networks, optimizer and loss",
            "command": COMMAND,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--seeds", type=int, default=8, help="CartPole seeds, each run both ways")
    parser.add_argument("--iterations", type=int, default=20, help="breakdown: train() calls")
    parser.add_argument("--sb3-seed", type=int, help=argparse.SUPPRESS)  # one SB3 run, inside
    args = parser.parse_args()
    if args.sb3_seed is not None:
        print(json.dumps(sb3_cartpole(args.sb3_seed)), flush=True)
        return
    parts = parts_to_run(args.only, PARTS, parser)
    if "cartpole" in parts and importlib.util.find_spec("stable_baselines3") is None:
        parser.error('--only cartpole needs stable-baselines3: pip install -e ".[bench]"')
    path = ROOT / "bench" / "results" / "ppo.json"
    report, save = open_report(path)
    report["command"] = shlex.join([os.path.relpath(sys.executable), *sys.argv])

    # The breakdown first, in the Ray instance open_report started; then that instance goes,
    # so the CartPole processes share the 2 cores with nothing of this one's.
    if "breakdown" in parts:
        log(f"2. breakdown of one PPO update, {args.iterations} train() calls, and the floor")
        report["breakdown"] = breakdown(args.iterations)
        log(json.dumps(report["breakdown"]))
        save()
    import ray

    ray.shutdown()
    if "cartpole" in parts:
        log(f"1. CartPole-v1 to 475, seeds 0-{args.seeds - 1}: rlgen vs SB3")
        report["cartpole"] = cartpole(args.seeds)
        log(json.dumps({k: v for k, v in report["cartpole"].items() if k not in ("rlgen", "sb3")}))
    set_headline(report, headline(report))
    save()
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
