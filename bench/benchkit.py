"""Helpers the benchmark scripts share: timing wrappers, step counts, and RLlib's built-in
algorithms run on CartPole-v1 to the same 100-episode criterion as ours."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

BENCH_CARTPOLE = "bench-cartpole"


def steps_of(result: dict) -> int:
    return int(result["env_runners"]["num_env_steps_sampled_lifetime"])


def timed_calls(obj: Any, method: str, totals: dict[str, float], key: str) -> None:
    """Make ``obj.method`` add the seconds each call takes to ``totals[key]``."""
    inner = getattr(obj, method)
    totals.setdefault(key, 0.0)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t0

    setattr(obj, method, wrapper)


def rllib_cartpole_to_475(
    make_config: Callable[[str], Any], *, seed: int, time_cap_s: float, target: float = 475.0
) -> dict:
    """Train an RLlib built-in algorithm on CartPole-v1 until the mean return of its last 100
    episodes reaches ``target`` (the criterion ours is judged by) or ``time_cap_s`` passes.

    ``make_config(env_name)`` returns the algorithm's config for that registered env, with its
    env runner local (``num_env_runners=0``) so the episode callback fills a list here.
    RLlib's own ``episode_return_mean`` averages only the current iteration's episodes.
    """
    import gymnasium as gym
    from ray.tune.registry import register_env

    from envs import GameStatistics

    # GameStatistics puts the whole episode's return into the last info: RLlib hands the
    # callback only the episode's last chunk, whose own return is a few steps' worth.
    register_env(BENCH_CARTPOLE, lambda cfg: GameStatistics(gym.make("CartPole-v1")))
    returns: list[float] = []

    def on_episode_end(episode: Any, **kwargs: Any) -> None:
        returns.append(float(episode.get_infos(-1)["game_return"]))

    config = make_config(BENCH_CARTPOLE).callbacks(on_episode_end=on_episode_end)
    config.debugging(seed=seed)
    algo = config.build_algo()
    t0, solved, ret, result = time.monotonic(), False, float("nan"), {}
    try:
        while time.monotonic() - t0 < time_cap_s:
            result = algo.train()
            ret = float(np.mean(returns[-100:])) if len(returns) >= 100 else float("nan")
            if ret >= target:
                solved = True
                break
    finally:
        algo.stop()
    return {
        "seed": seed,
        "solved": solved,
        "env_steps": steps_of(result) if result else 0,
        "training_wall_time_s": round(time.monotonic() - t0, 1),
        "episodes": len(returns),
        "last_100_episode_return_mean": ret,
    }
