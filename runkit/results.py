"""What the run API returns and streams: typed results with the fields of ``result.json``, and
the report of each iteration (RL) or epoch (generative) handed to a caller's callback.

A callback ``on_report(report)`` runs in the caller's process after each report; returning
``True`` stops the run cleanly (a last checkpoint and result.json are written, and the result's
``stop_reason`` is ``"callback"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runkit.rundir import RESULT_FILE, read_json, write_json_atomic

STOP_BY_CALLBACK = "callback"


@dataclasses.dataclass(frozen=True)
class Report:
    """One iteration of an RL run or one epoch of a generative run, as it happens."""

    job: str  # the algorithm or model
    iteration: int  # RL: training iterations so far; generative: epochs so far
    step: int  # the TensorBoard x-axis: env steps (RL) or epochs (generative)
    metrics: dict[str, Any]
    checkpoint: str | None = None  # RL: the checkpoint written after this iteration, if one was
    last: bool = False  # a stop criterion was met: result.json follows, no more iterations


OnReport = Callable[[Report], "bool | None"]


@dataclasses.dataclass(frozen=True)
class RLResult:
    """``result.json`` of an RL run (the README's "Outputs" contract), plus its run
    directory."""

    algorithm: str
    env: str
    env_steps: int
    wall_time_s: float
    episode_return_mean: float
    best_episode_return_mean: float
    solved: bool
    env_steps_per_s: float
    checkpoint: str | None
    tensorboard_dir: str
    stop_reason: str  # solved | max_env_steps | time_budget | callback
    run_dir: str


@dataclasses.dataclass(frozen=True)
class GenerativeResult:
    """``result.json`` of a generative run (the README's "Outputs" contract), plus its run
    directory."""

    model: str
    dataset: str
    epochs: int
    wall_time_s: float
    train_images_per_s: float
    test_nll_nats: float | None
    test_bits_per_dim: float | None
    checkpoint: str | None
    samples_png: str
    tensorboard_dir: str
    num_workers: int
    use_gpu: bool
    metrics: dict[str, float]
    stop_reason: str  # epochs | callback
    run_dir: str


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """``rlgen eval``: greedy and sampling returns of a checkpoint's policy."""

    env: str
    algorithm: str | None
    episodes: int
    greedy_return_mean: float
    greedy_return_std: float
    sampling_return_mean: float
    sampling_return_std: float
    checkpoint: str
    video: str | None = None
    video_frames: int | None = None


@dataclasses.dataclass(frozen=True)
class RecordResult:
    """``rlgen record``: the recording written (also in its ``recording.json``)."""

    out: str
    env: str
    steps: int  # env steps taken
    frames: int  # rows: one per observation (an episode's last one included)
    episodes: int
    train_episodes: int
    test_episodes: int
    policy: str  # random | checkpoint
    checkpoint: str | None
    epsilon: float
    wall_time_s: float
    actor_peak_rss_mb: list[float]  # each rollout actor's peak resident memory


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """``rlgen sample``: the image grid written from a generative checkpoint."""

    checkpoint: str
    n: int
    out: str


R = TypeVar("R", RLResult, GenerativeResult)


def to_dict(result: Any) -> dict[str, Any]:
    return dataclasses.asdict(result)


def write_result(run_dir: Path, result: RLResult | GenerativeResult) -> None:
    write_json_atomic(Path(run_dir) / RESULT_FILE, to_dict(result))


def read_result(run_dir: Path, cls: type[R]) -> R:
    """A run's result.json as its typed result (keys the class does not know are ignored)."""
    data = read_json(Path(run_dir) / RESULT_FILE)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
