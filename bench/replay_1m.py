"""Benchmark: the DQN replay memory at the size of the Nature DQN, 1M Atari transitions.

1. Memory: a 1M-slot ``FrameReplay`` (84x84 frames stored once, 4-frame stacks and 3-step
   returns built at sample time) filled past its capacity with episodes arriving in 200-step
   chunks, as rollout actors send them. Bytes per transition as the memory counts them and as
   the process's resident size grows; goal: <= 7.5 KiB (one frame is 7,056 bytes).
2. Sampling vs update: the time of one ``sample(32)`` (uniform, and prioritized with its
   priority update) against one gradient step of the DQN Learner on that batch (Nature CNN,
   double + dueling, Adam, on this machine's CPU); goal: sampling < 5% of the update.

The frames are random bytes, not game frames: neither memory nor sampling time depends on the
pixels. Writes bench/results/replay_1m.json.

    .venv/bin/python bench/replay_1m.py [--transitions 1000000] [--samples 300] [--updates 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = Path(__file__).resolve().parent / "results"
GOAL_BYTES = 7.5 * 1024
GOAL_SAMPLE_FRACTION = 0.05


def log(msg: str) -> None:
    print(f"[replay_1m] {msg}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fill(replay: object, transitions: int, rng: np.random.Generator) -> float:
    """Episodes of 200 to 3,000 steps (Breakout's range) in 200-step chunks; seconds taken."""
    pool = rng.integers(0, 256, size=(1024, 84, 84), dtype=np.uint8)
    added, key = 0, 0
    t0 = time.perf_counter()
    while added < transitions:
        length = int(rng.integers(200, 3000))
        done = 0
        while done < length:
            n = min(200, length - done, transitions - added)
            frames = pool[rng.integers(0, len(pool), size=n + 1)]
            obs = np.repeat(frames[:, None], 4, axis=1)  # (n+1, 4, 84, 84) as actors send it
            last = done + n >= length or added + n >= transitions
            replay.add_chunk(  # type: ignore[attr-defined]
                key, obs, rng.integers(0, 4, size=n), rng.normal(size=n).astype(np.float32),
                terminated=last, truncated=False,
            )  # fmt: skip
            done, added = done + n, added + n
            if added % 100_000 < n:
                log(f"  {added:,} transitions added ({time.perf_counter() - t0:.0f} s)")
            if added >= transitions:
                break
        key += 1
    return time.perf_counter() - t0


def timed(fn: Any, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dqn_learner() -> object:
    import gymnasium as gym
    from ray.rllib.core import DEFAULT_MODULE_ID

    from algorithms.dqn.algorithm import DQNConfig

    config = DQNConfig().atari_defaults().debugging(seed=0)
    config.train_batch_size_per_learner = 32
    obs = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    return config.build_learner(spaces={DEFAULT_MODULE_ID: (obs, gym.spaces.Discrete(4))})


def sample_ms(replay: Any, prioritized: bool, samples: int, rng: np.random.Generator) -> float:
    """Median milliseconds of one sample of 32 (prioritized: with its priority update)."""
    td = np.abs(rng.normal(size=32))

    def draw() -> None:
        batch = replay.sample(32, beta=0.4)
        if prioritized:
            replay.update_priorities(batch.indices, td)

    return timed(draw, samples) * 1e3


def update_ms(replay: Any, updates: int) -> float:
    """Median milliseconds of one DQN Learner gradient step on a sample of 32."""
    from ray.rllib.core.columns import Columns

    from algorithms.dqn.learner import DISCOUNT, NEXT_OBS, RETURNS, WEIGHTS

    learner: Any = dqn_learner()
    batch = replay.sample(32)
    columns = {
        Columns.OBS: batch.obs, Columns.ACTIONS: batch.actions, NEXT_OBS: batch.next_obs,
        RETURNS: batch.returns, DISCOUNT: batch.bootstrap_discount, WEIGHTS: batch.weights,
    }  # fmt: skip
    steps = {"num_env_steps_sampled_lifetime": 0}
    return (
        timed(
            lambda: learner.update_from_replay(columns, minibatch_size=32, timesteps=steps), updates
        )
        * 1e3
    )


def main() -> None:
    import torch

    from algorithms.dqn.replay import FrameReplay

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--updates", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    report: dict = {
        "machine": f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}",
        "transitions": args.transitions,
    }

    for prioritized in (False, True):
        name = "prioritized" if prioritized else "uniform"
        log(f"{name}: a {args.transitions:,}-slot memory, filled with 1.05x that many")
        before = rss_bytes()
        replay = FrameReplay(
            args.transitions, (84, 84), stack=4, n_step=3, gamma=0.99,
            prioritized=prioritized, seed=0,
        )  # fmt: skip
        fill_s = fill(replay, int(args.transitions * 1.05), rng)
        grown = rss_bytes() - before
        held = len(replay)
        part = {
            "transitions_held": held,
            "sampleable": replay.num_sampleable,
            "fill_s": round(fill_s, 1),
            "fill_transitions_per_s": round(args.transitions * 1.05 / fill_s),
            "replay_bytes_per_transition": round(replay.bytes_per_transition, 1),
            "rss_growth_bytes_per_transition": round(grown / held, 1),
            "goal_bytes_per_transition": GOAL_BYTES,
            "sample_32_ms": round(sample_ms(replay, prioritized, args.samples, rng), 3),
        }
        report[name] = part
        log(json.dumps(part))
        if not prioritized:
            report["update_32_ms"] = round(update_ms(replay, args.updates), 2)
            log(f"one Learner update of 32: {report['update_32_ms']} ms")
        del replay  # the next memory is measured without this one

    for name in ("uniform", "prioritized"):
        report[name]["sample_fraction_of_update"] = round(
            report[name]["sample_32_ms"] / report["update_32_ms"], 4
        )
    report["goal_sample_fraction"] = GOAL_SAMPLE_FRACTION
    report["meets_goals"] = all(
        report[n]["replay_bytes_per_transition"] <= GOAL_BYTES
        and report[n]["sample_fraction_of_update"] < GOAL_SAMPLE_FRACTION
        for n in ("uniform", "prioritized")
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "replay_1m.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
