"""``rlgen record``: what an agent sees, sampled by the training's own rollout actors, written
as a recording (``runkit.recording``: a Parquet image dataset the generative jobs read).

The policy: uniform random actions, or a checkpoint's greedy action (weights read as ``rlgen
eval`` reads them: nothing of the checkpoint is unpickled) taken with probability 1 - epsilon
and a uniform random one otherwise. ``num_env_runners`` actors (``RecordingRunner``, rlgen's
``LeanEnvRunner`` with a recorder) each sample their share of the steps and write their own
files, a row group per round; the driver prints progress after each round and writes
``recording.json`` last.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from runkit import cluster, recording
from runkit.checks import check_range, check_seed
from runkit.errors import UserError
from runkit.results import RecordResult

MAX_STEPS = 10**9
MAX_RUNNERS = 256
ROUND_STEPS = 1024  # env steps per actor per round: one row group (~7 MB of Atari frames)
RANDOM_POLICY_ALGORITHM = "a2c"  # builds the actors; its policy is never asked


@dataclasses.dataclass(frozen=True)
class Policy:
    """Who acts: ``weights`` None for uniform random actions."""

    algorithm: str
    spec: dict[str, Any]
    weights: dict[str, np.ndarray] | None
    epsilon: float
    checkpoint: str | None


def record(
    env: str | None,
    *,
    steps: int,
    out: str | Path,
    checkpoint: str | Path | None = None,
    epsilon: float | None = None,
    num_env_runners: int = 2,
    num_envs_per_env_runner: int = 1,
    seed: int = 0,
    env_module: str | None = None,
) -> RecordResult:
    """Record ``steps`` env steps of ``env`` (an Atari game) into the new folder ``out``."""
    _check_numbers(steps, num_env_runners, num_envs_per_env_runner, seed, epsilon, checkpoint)
    target = _check_out(out)
    policy = _policy(env, checkpoint, epsilon, env_module)
    env_id = policy.spec["env"]
    config = _config(policy, num_env_runners, num_envs_per_env_runner, seed)
    metadata = _metadata(env_id, config, policy, seed)
    target.mkdir(parents=True, exist_ok=True)
    cluster.connect()
    counts = _run_actors(config, policy, metadata, target, steps, num_env_runners)
    result = RecordResult(
        out=str(target), env=env_id, steps=counts["steps"], frames=counts["frames"],
        episodes=counts["episodes"], train_episodes=counts["train_episodes"],
        test_episodes=counts["test_episodes"], policy=metadata["policy"]["kind"],
        checkpoint=policy.checkpoint, epsilon=policy.epsilon, wall_time_s=counts["wall_time_s"],
        actor_peak_rss_mb=counts["actor_peak_rss_mb"],
    )  # fmt: skip
    from runkit.rundir import write_json_atomic

    write_json_atomic(target / recording.RECORDING_FILE, {**dataclasses.asdict(result), **metadata})
    return result


def _check_numbers(
    steps: int, runners: int, envs: int, seed: int, epsilon: float | None, checkpoint: Any
) -> None:
    try:
        check_range("--steps", steps, low=1, high=MAX_STEPS, integer=True)
        check_range("--num-env-runners", runners, low=1, high=MAX_RUNNERS, integer=True)
        check_range("--num-envs-per-env-runner", envs, low=1, high=64, integer=True)
        check_seed("--seed", seed)
        if epsilon is not None:
            check_range("--epsilon", epsilon, low=0.0, high=1.0)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if epsilon is not None and checkpoint is None:
        raise UserError("--epsilon needs --checkpoint: without one every action is random")


def _check_out(out: str | Path) -> Path:
    """A new folder, or an empty one: a recording never mixes with files already there."""
    text = str(out)
    if "://" in text:
        raise UserError(f"record --out {text}: a recording is written to a local folder")
    path = Path(text)
    if path.is_symlink():
        raise UserError(f"record --out {text}: is a symbolic link; name a real folder")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(
            f"record --out {text}: already exists and is not empty; choose a new folder"
        )
    if not path.parent.is_dir():
        raise UserError(f"record --out {text}: folder {path.parent} does not exist")
    return path.resolve()


def _policy(
    env: str | None, checkpoint: str | Path | None, epsilon: float | None, env_module: str | None
) -> Policy:
    if checkpoint is None:
        if not env:
            raise UserError("record: give --env (or --checkpoint, whose env is used)")
        _check_atari(env)
        spec = {"algorithm": RANDOM_POLICY_ALGORITHM, "env": env, "overrides": {}}
        return Policy(RANDOM_POLICY_ALGORITHM, spec, None, 1.0, None)
    from algorithms.evaluate import find_checkpoint, load_policy

    module, spec = load_policy(checkpoint, env_module=env_module)
    if env and env != spec["env"]:
        raise UserError(f"record --env {env}: the checkpoint's policy plays {spec['env']}")
    _check_atari(str(spec["env"]))
    weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    return Policy(
        str(spec["algorithm"]), spec, weights, 0.0 if epsilon is None else float(epsilon),
        str(find_checkpoint(checkpoint)),
    )  # fmt: skip


def _check_atari(env: str) -> None:
    from envs import check_env_id

    check_env_id(env)
    if not env.startswith("ALE/"):
        raise UserError(
            f"record --env {env}: recordings hold image frames; give an Atari game (ALE/...)"
        )


def _config(policy: Policy, runners: int, envs: int, seed: int) -> Any:
    from algorithms.configure import RLRunSpec, build_config

    fields = {f.name for f in dataclasses.fields(RLRunSpec)}
    spec = RLRunSpec(**{k: v for k, v in policy.spec.items() if k in fields})
    spec = dataclasses.replace(
        spec, num_env_runners=runners, num_envs_per_env_runner=envs, seed=seed
    )
    return build_config(spec, frozen=True)


def _metadata(env_id: str, config: Any, policy: Policy, seed: int) -> dict[str, Any]:
    from envs import PRESET_OPTIONS
    from envs.atari import FRAME_SIZE, FRAME_SKIP, NOOP_MAX

    preset = {k: getattr(config, k) for k in PRESET_OPTIONS}
    preset.update(training=True, frame_size=FRAME_SIZE, frame_skip=FRAME_SKIP, noop_max=NOOP_MAX)
    return {
        "format": recording.FORMAT_VERSION,
        "env": env_id,
        "preset": preset,
        "policy": {
            "kind": "random" if policy.weights is None else "checkpoint",
            "algorithm": None if policy.weights is None else policy.algorithm,
            "checkpoint": policy.checkpoint,
            "epsilon": policy.epsilon,
        },
        "seed": seed,
        "num_env_runners": config.num_env_runners,
        "num_envs_per_env_runner": config.num_envs_per_env_runner,
    }


def _run_actors(
    config: Any, policy: Policy, metadata: dict, out: Path, steps: int, runners: int
) -> dict[str, Any]:
    """Each actor records its share, a round at a time; progress after each round."""
    import ray

    from algorithms.record_runner import RecordingRunner

    shares = [steps // runners + (1 if i < steps % runners else 0) for i in range(runners)]
    actor_cls: Any = ray.remote(num_cpus=config.num_cpus_per_env_runner)(RecordingRunner)
    actors: list[Any] = [
        actor_cls.remote(config=config, worker_index=i + 1, num_workers=runners)
        for i in range(runners)
    ]
    weights = None if policy.weights is None else ray.put(policy.weights)
    ray.get([
        a.start_recording.remote(str(out), i, policy.epsilon, weights, metadata)
        for i, a in enumerate(actors)
    ])  # fmt: skip
    t0, left, done = time.monotonic(), list(shares), 0
    per_round = ROUND_STEPS * config.num_envs_per_env_runner
    while any(left):
        busy = [i for i in range(runners) if left[i]]  # an actor whose share is done rests
        taken = ray.get([actors[i].record_round.remote(min(left[i], per_round)) for i in busy])
        for i, n in zip(busy, taken, strict=True):
            left[i] = max(0, left[i] - n)
        done += sum(taken)
        rate = done / max(time.monotonic() - t0, 1e-9)
        print(f"[record {metadata['env']}] env steps {done:>11,} / {steps:,} | {rate:7.0f} "
              "steps/s", file=sys.stderr, flush=True)  # fmt: skip
    totals = ray.get([a.finish_recording.remote() for a in actors])
    for a in actors:
        ray.kill(a)
    counts: dict[str, Any] = {k: sum(t[k] for t in totals) for k in totals[0] if k != "peak_rss_mb"}
    counts["actor_peak_rss_mb"] = [t["peak_rss_mb"] for t in totals]
    counts["wall_time_s"] = round(time.monotonic() - t0, 3)
    return counts


def read_back(out: str | Path) -> Any:
    """A whole recording as one pyarrow table (both splits), for tests and tools."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    for split in ("train", "test"):
        folder = Path(out) / f"{split}.parquet"
        for name in sorted(os.listdir(folder)) if folder.is_dir() else []:
            if name.endswith(".parquet") and not name.startswith("."):
                parts.append(pq.read_table(folder / name))
    return pa.concat_tables(parts)
