"""Benchmark: rlgen's rollout engine (``env_runner=rlgen``) against RLlib's EnvRunner
(``env_runner=rllib``), side by side in one run on this machine.

1. ``actor``: one rollout actor's sampling, Atari preset (Breakout), against the same preset env
   stepped with random actions and no policy (the "bare env", measured in the same process,
   interleaved with the runner's calls after a warm-up; medians of the repeats): the Python
   wrappers with 1 env
   and ale-py's C++ vector backend with 8 envs, each with DQN acting early in training (epsilon
   near 1: almost every action random) and late (epsilon 0.01: a Q-network forward every step).
2. ``a2c_round``: A2C on CartPole-v1, rollouts in the Algorithm process (0 actors), 16 envs x
   16 steps: env steps per second of whole rounds (sampling, update, weight sync), with
   gymnasium's envs stepped one by one (``python``) and with its numpy CartPole vector env
   (``rollout_backend=vector``); each runner and backend ``--round-repeats`` times,
   interleaved, median reported.
3. ``dqn_train``: DQN Breakout training, 1 env, batch 32, one update per 4 env steps, epsilon
   0.01 (a forward every step), against the bare compute limit (the same forwards and updates
   in a plain PyTorch loop, ``dqn_atari_parts.throughput_compute_limit``).
4. ``reinforce``: REINFORCE CartPole-v1 env steps per second of whole iterations (defaults).
5. ``a2c_475``: A2C CartPole-v1 wall time to a 100-game mean of 475 (seeds 0..7, rlgen's
   runner) next to RLlib's PPO (``bench/a2c.py``'s runs).

Writes bench/results/rollouts.json.

    .venv/bin/python bench/rollouts.py [--only actor,a2c_round,dqn_train,reinforce,a2c_475]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from benchkit import open_report, parts_to_run, steps_of

OUT = Path(__file__).resolve().parent / "results"
PARTS = ("actor", "a2c_round", "dqn_train", "reinforce", "a2c_475")
RUNNERS = ("rllib", "rlgen")
GAME = "ALE/Breakout-v5"
EARLY, LATE = [1.0, 0.01, 250_000], [0.01, 0.01, 1]  # DQN epsilon schedules


def log(msg: str) -> None:
    print(f"[bench rollouts] {msg}", flush=True)


def build(algorithm: str, env: str, *, num_envs: int | None = None, **overrides: Any) -> Any:
    from algorithms.configure import RLRunSpec, build_config

    spec = RLRunSpec(algorithm=algorithm, env=env, overrides=overrides, seed=0,
                     num_env_runners=0, num_envs_per_env_runner=num_envs)  # fmt: skip
    return build_config(spec).build_algo()


def bare_env_rate(env: Any, rng: Any, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def actor(runner: str, backend: str, num_envs: int, epsilon: list, steps: int, reps: int) -> dict:
    import numpy as np

    from envs.atari import make_atari_env

    env = make_atari_env(GAME, training=True, frame_stack=4)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    algo = build("dqn", GAME, num_envs=num_envs, env_runner=runner, rollout_backend=backend,
                 epsilon=epsilon, replay_capacity=1_000)  # fmt: skip
    try:
        sampler = algo.env_runner
        # Warm-up: the first calls after Ray starts the algorithm run slower (Ray's own
        # start-up work shares the two cores for a few seconds).
        sampler.sample(num_timesteps=steps)
        time.sleep(2.0)
        sampler.sample(num_timesteps=steps)
        bare, ours = [], []
        for _ in range(reps):
            bare.append(bare_env_rate(env, rng, steps))
            t0 = time.perf_counter()
            sampler.sample(num_timesteps=steps)
            ours.append(steps / (time.perf_counter() - t0))
    finally:
        algo.stop()
        env.close()
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    return {
        "env_runner": runner,
        "backend": backend,
        "num_envs": num_envs,
        "epsilon": epsilon[0] if epsilon is EARLY else epsilon[1],
        "env_steps_per_s": round(statistics.median(ours), 1),
        "bare_env_steps_per_s": round(statistics.median(bare), 1),
        "ratio_to_bare_env": round(statistics.median(ratios), 3),
    }


def whole_rounds(algo: Any, seconds: float) -> dict:
    algo.train()
    s0, t0 = steps_of(algo.train()), time.monotonic()
    while time.monotonic() - t0 < seconds:
        result = algo.train()
    elapsed, steps = time.monotonic() - t0, steps_of(result) - s0
    sampling = result["timers"].get("env_runner_sampling_timer")
    return {
        "env_steps_per_s": round(steps / elapsed, 1),
        "env_steps": steps,
        "seconds": round(elapsed, 1),
        "sampling_s_per_round": None if sampling is None else round(float(sampling), 5),
    }


def training_throughput(
    runner: str, seconds: float, algorithm: str, env: str, *, warm_steps: int = 0, **build_kw: Any
) -> dict:
    """Whole iterations of one algorithm with one runner, after ``warm_steps`` env steps."""
    algo = build(algorithm, env, env_runner=runner, **build_kw)
    try:
        while steps_of(algo.train()) < warm_steps:
            pass
        return {"env_runner": runner, **whole_rounds(algo, seconds)}
    finally:
        algo.stop()


def a2c_rounds(seconds: float, repeats: int) -> list[dict]:
    """Each backend and runner ``repeats`` times, interleaved (``seconds`` split among the
    repeats): this machine's speed drifts by tens of percent over minutes, so one block per
    runner would compare them at different speeds. Rows give the median and every repeat."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(repeats):
        for backend in ("python", "vector"):
            for runner in RUNNERS:
                runs.setdefault((backend, runner), []).append(training_throughput(
                    runner, seconds / repeats, "a2c", "CartPole-v1", num_envs=16,
                    rollout_fragment_length=16, rollout_backend=backend))  # fmt: skip
    rows = []
    for (backend, runner), results in runs.items():
        rates = [r["env_steps_per_s"] for r in results]
        rows.append({
            "rollout_backend": backend,
            "env_runner": runner,
            "env_steps_per_s": round(statistics.median(rates), 1),
            "env_steps_per_s_each": rates,
            "seconds": round(sum(r["seconds"] for r in results), 1),
        })  # fmt: skip
    return rows


def part_actor(steps: int, reps: int) -> list[dict]:
    log("1. one rollout actor vs the bare Atari env")
    rows = []
    for backend, num_envs in (("python", 1), ("vector", 8)):
        for epsilon in (EARLY, LATE):
            for runner in RUNNERS:
                rows.append(actor(runner, backend, num_envs, epsilon, steps, reps))
                log(json.dumps(rows[-1]))
    return rows


def part_dqn_train(seconds: float, threads: int) -> dict:
    log("3. DQN Breakout training vs the bare compute limit")
    from dqn_atari_parts import throughput_compute_limit

    # The CartPole parts set one torch thread for their small MLPs (a process-wide
    # setting); the CNN and its compute limit run with the process's own count.
    torch.set_num_threads(threads)
    rows = [
        training_throughput(r, seconds, "dqn", GAME, warm_steps=1_000, num_envs=1,
                            epsilon=LATE, learning_starts=1_000, replay_capacity=50_000)
        for r in RUNNERS
    ]  # fmt: skip
    limit = throughput_compute_limit(1)
    for row in rows:
        row["ratio_to_compute_limit"] = round(row["env_steps_per_s"] / limit["env_steps_per_s"], 3)
    part = {"runs": rows, "compute_limit": limit}
    log(json.dumps(part))
    return part


def part_a2c_475(seeds: int, ppo_seeds: int) -> dict:
    log("5. A2C CartPole to 475, seeds 0..N-1 (rlgen's runner), next to RLlib's PPO")
    from a2c import cartpole_ppo, summary
    from benchkit import cartpole_run

    runs, ppo = [], []
    for seed in range(seeds):
        runs.append(cartpole_run("a2c", seed, 300_000))
        log(json.dumps(runs[-1]))
    for seed in range(ppo_seeds):
        ppo.append(cartpole_ppo(seed, 600.0))
        log(json.dumps(ppo[-1]))
    return {
        "rlgen_a2c": {"runs": runs, **summary(runs)},
        "rllib_ppo_defaults": {"runs": ppo, **summary(ppo)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS[:4]), help="comma-separated parts")
    parser.add_argument("--steps", type=int, default=1_500, help="per actor sample call")
    parser.add_argument("--reps", type=int, default=4, help="actor sample calls, interleaved")
    parser.add_argument("--seconds", type=float, default=30.0, help="per throughput run")
    parser.add_argument("--round-repeats", type=int, default=3, help="a2c_round, interleaved")
    parser.add_argument("--seeds", type=int, default=8, help="a2c_475 seeds, ours")
    parser.add_argument("--ppo-seeds", type=int, default=1, help="a2c_475 seeds, RLlib's PPO")
    args = parser.parse_args()
    parts = parts_to_run(args.only, PARTS, parser)
    path = OUT / "rollouts.json"
    report, save = open_report(path)
    threads = torch.get_num_threads()

    if "actor" in parts:
        report["actor"] = part_actor(args.steps, args.reps)
        save()
    if "a2c_round" in parts:
        log("2. A2C CartPole whole rounds, 0 actors, 16 envs x 16 steps")
        report["a2c_round"] = a2c_rounds(args.seconds, args.round_repeats)
        log(json.dumps(report["a2c_round"]))
        save()
    if "dqn_train" in parts:
        report["dqn_train"] = part_dqn_train(args.seconds, threads)
        save()
    if "reinforce" in parts:
        log("4. REINFORCE CartPole whole iterations")
        report["reinforce"] = [
            training_throughput(r, args.seconds, "reinforce", "CartPole-v1") for r in RUNNERS
        ]
        log(json.dumps(report["reinforce"]))
        save()
    if "a2c_475" in parts:
        report["a2c_475"] = part_a2c_475(args.seeds, args.ppo_seeds)
        save()
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
