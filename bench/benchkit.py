"""Helpers the benchmark scripts share: timing wrappers, step counts, RLlib's built-in
algorithms run on CartPole-v1 to the same 100-episode criterion as ours, the machine a report
was measured on, and learning curves read from a run's TensorBoard and drawn."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
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


def parts_to_run(only: str, known: tuple[str, ...], parser: Any) -> list[str]:
    """The ``--only`` list, checked against the script's parts (argparse error otherwise)."""
    parts = only.split(",")
    unknown = set(parts) - set(known)
    if unknown:
        parser.error(f"--only: unknown part(s) {sorted(unknown)}; choose from {known}")
    return parts


def machine_info() -> dict[str, Any]:
    """This machine as the reports record it, without starting Ray."""
    import os
    import platform
    from importlib.metadata import version

    import torch

    return {
        "cpus": os.cpu_count(),
        "gpu": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": version("ray"),
    }


def open_report(path: Path) -> tuple[dict[str, Any], Callable[[], None]]:
    """Start a local Ray instance with this machine's 2 CPUs (quiet), load the report at
    ``path`` if an earlier run left one (parts not rerun keep their figures), record the
    machine, and return the report with a function that writes it back."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    for name in ("ray.rllib", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
    path.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    report["machine"] = machine_info()

    def save() -> None:
        path.write_text(json.dumps(report, indent=2) + "\n")

    return report, save


def cartpole_run(
    algorithm: str, seed: int, max_env_steps: int, overrides: dict[str, Any] | None = None
) -> dict:
    """One of our algorithms on CartPole-v1 through ``rlgen.train`` (default config unless
    ``overrides``, stop at the env's 475, no evaluation video), in a scratch run directory."""
    import tempfile

    import rlgen

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        result = rlgen.train(
            algorithm, env="CartPole-v1", seed=seed, max_env_steps=max_env_steps,
            overrides=overrides, video_frames=0, output=Path(tmp) / "run",
        )  # fmt: skip
        wall = time.monotonic() - t0
    assert isinstance(result, rlgen.RLResult)
    return {
        "seed": seed,
        "solved": result.solved,
        "env_steps": result.env_steps,
        "training_wall_time_s": result.wall_time_s,
        "wall_time_s_with_setup": round(wall, 1),
    }


def generative_run(model: str, epochs: int, num_workers: int = 1, **overrides: Any) -> dict:
    """One of our generative jobs through ``rlgen.train`` on mnist5k, in a scratch run
    directory; result.json's dict plus the wall time with set-up."""
    import tempfile

    import rlgen

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        result = rlgen.train(
            model, epochs=epochs, num_workers=num_workers, overrides=overrides,
            output=Path(tmp) / "run",
        )  # fmt: skip
        out = rlgen.to_dict(result)
        out["wall_time_s_with_setup"] = round(time.monotonic() - t0, 1)
    return out


def plain_generative_loop(model: str, epochs: int, threads: int = 1, **overrides: Any) -> dict:
    """The generative jobs' training step without Ray: mnist5k's training split in memory, the same
    model, loss, batch size and binarization, ``threads`` torch threads, and the same allocator
    setting as the Train workers (``runkit.allocator``: without it this loop spent a quarter of
    its time in page faults and ran at 0.76x of the Ray Train worker)."""
    import math

    import torch

    from generative.configure import load_job
    from generative.data.images import binarize, mnist5k, read_split, split_path
    from runkit.allocator import keep_freed_memory

    keep_freed_memory()  # as the Train workers do
    torch.set_num_threads(threads)
    job = load_job(model)
    cfg = job.config_class(epochs=epochs, **overrides)
    images, _ = read_split(split_path(mnist5k(), "train"))
    net = job.build_model(cfg, images.shape[1:])
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(epochs):
        t0, seen = time.monotonic(), 0
        batches = math.ceil(len(images) / cfg.batch_size)
        for idx in np.array_split(rng.permutation(len(images)), batches):
            x = binarize(torch.as_tensor(images[idx]), cfg.binarize, generator=generator)
            loss = job.loss(net, x, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(x)
        rates.append(seen / (time.monotonic() - t0))
    return {"threads": threads, "train_images_per_s_per_epoch": [round(r, 1) for r in rates]}


def read_scalars(tensorboard_dir: Path, tag: str) -> list[tuple[int, float, float]]:
    """``tag`` in a run's TensorBoard event files: (step, seconds since the run's first event,
    value) by step. A step written twice (a resumed run) keeps the later file's value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, tuple[float, float]] = {}
    start = math.inf
    for events in sorted(tensorboard_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        start = min(start, acc.FirstEventTimestamp())
        if tag in acc.Tags()["scalars"]:
            points.update({e.step: (e.wall_time, e.value) for e in acc.Scalars(tag)})
    return [(step, wall - start, value) for step, (wall, value) in sorted(points.items())]


def pyplot() -> Any:
    """matplotlib.pyplot drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_curves(
    ax: Any, curves: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str
) -> None:
    """One labelled line per non-empty (x, y) curve on ``ax``, with a grid and a legend."""
    for label, points in curves.items():
        if points:
            marker = "o" if len(points) == 1 else None  # a lone point draws no line
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, marker=marker)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()


def set_headline(
    report: dict[str, Any], rows: list[dict[str, Any]], date: str | None = None
) -> None:
    """Name the report's headline figures, which bench/summary.py puts into docs/benchmarks.md:
    each row ``{"what", "ours", "unit", "peer", "peer_name", "command"}`` (``peer`` and
    ``peer_name`` None where no peer was measured; ``command`` reproduces the figure), checked
    here; ``date`` (YYYY-MM-DD) defaults to today, UTC."""
    from datetime import UTC, datetime

    from summary import check_row

    for i, row in enumerate(rows):
        check_row(row, f"headline[{i}]")
    report["headline"] = rows
    report["date"] = date or datetime.now(UTC).date().isoformat()
