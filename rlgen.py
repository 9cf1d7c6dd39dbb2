#!/usr/bin/env python3
"""rlgen: deep RL (custom RLlib algorithms) and deep generative models (Ray Train) on Ray.

The Python API (the command line over it is ``rlgen_cli``; run as a script, as ``ray submit``
does, this file is that command):

    import rlgen
    result = rlgen.train("reinforce", env="CartPole-v1", max_env_steps=5000)
    search = rlgen.tune("reinforce_cartpole", num_samples=4, max_env_steps=50_000)

    ray submit cluster/aws.yaml rlgen.py -- train reinforce --env CartPole-v1

Every job goes through its kind (``runkit.jobkind.JobKind``, listed in ``jobs``). Bad input
raises ``rlgen.UserError`` (the command: exit status 2 and one ``rlgen: error: ...`` line).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jobs
from runkit import cluster, storage
from runkit.checks import check_range, check_seed
from runkit.errors import RunFailed, UserError
from runkit.jobkind import JobKind, RunRequest
from runkit.results import (
    EvalResult,
    GenerativeResult,
    OnReport,
    RecordResult,
    Report,
    RLResult,
    SampleResult,
    to_dict,
)

__all__ = [
    "train", "evaluate", "record", "sample", "tune", "UserError", "RunFailed", "Report",
    "RLResult", "RecordResult", "GenerativeResult", "EvalResult", "SampleResult", "to_dict",
]  # fmt: skip


def quiet() -> None:
    """Keep Ray's and RLlib's advice and deprecation notes off the terminal."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # imported for evaluation videos
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("ray.rllib", "ray.tune", "ray.train", "ray._common.deprecation"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --- the Python API ---------------------------------------------------------------------------


def train(
    job: str,
    *,
    env: str | None = None,
    dataset: str | None = None,
    overrides: dict[str, Any] | None = None,
    config: str | Path | None = None,
    stop_reward: float | None = None,
    max_env_steps: int | None = None,
    time_budget_s: float | None = None,
    epochs: int | None = None,
    num_env_runners: int | None = None,
    num_envs_per_env_runner: int | None = None,
    num_workers: int | None = None,
    use_gpu: str | None = None,
    max_failures: int | None = None,
    seed: int | None = None,
    checkpoint_every: int | None = None,
    video_frames: int | None = None,
    output: str | Path | None = None,
    resume: bool | str | Path = False,
    on_report: OnReport | None = None,
) -> RLResult | GenerativeResult:
    """Train an RL agent (``reinforce``, ``a2c``, ``dqn``; needs ``env``) or a generative model
    (``vae``, ``pixelcnn``; ``dataset`` defaults to mnist5k), exactly as ``rlgen train`` does.

    ``overrides`` are config keys (``--set``), over those of the ``config`` file. ``resume``
    continues the run in ``output`` (or, given as a path, in that run directory) from its last
    checkpoint. ``output`` may be an ``s3://`` or ``gs://`` URI (a local working copy is
    mirrored there; see ``runkit.storage``); with ``RAY_ADDRESS`` set, that cluster is joined
    first. ``on_report(report)`` is called after every iteration (RL) or epoch
    (generative); returning True stops the run cleanly. Returns the result written to
    ``result.json``; bad input raises UserError before anything is written.
    """
    given: dict[str, Any] = {k: v for k, v in locals().items() if k in jobs.all_args()}
    from runkit.overrides import merge_overrides

    quiet()
    kind = jobs.kind_of(job)
    _check_train_args(job, kind, given, seed)
    if isinstance(resume, (str, Path)):
        output, resume = resume, True
    merged = {**merge_overrides(None if config is None else str(config), None), **(overrides or {})}
    kind.precheck(job, merged)  # bad keys and values, before RLlib, torch or Ray load
    cluster.join_if_addressed()
    run = RunRequest(
        job=job, target=given[kind.target_arg], overrides=merged, output=output,
        args={**{k: given[k] for k in kind.own_args if k != kind.target_arg}, "seed": seed},
        resume=bool(resume), on_report=on_report,
    )  # fmt: skip
    return kind.train(run) if not storage.is_uri(output) else _run_at_uri(kind, run)


def _check_train_args(job: str, kind: JobKind, given: dict[str, Any], seed: int | None) -> None:
    """Arguments of another kind of job, a bad seed, a non-finite limit: UserError."""
    wrong = [k for k in jobs.all_args() if k not in kind.own_args and given[k] is not None]
    if wrong:
        owner = next(k for k in jobs.KINDS if wrong[0] in k.own_args)
        raise UserError(f"train {job}: --{wrong[0].replace('_', '-')} is for {owner.noun}")
    if seed is not None:
        _as_user_error(check_seed, "--seed", seed)
    for name in ("stop_reward", "time_budget_s"):
        if given.get(name) is not None:
            _as_user_error(check_range, f"--{name.replace('_', '-')}", given[name])  # finite


def _run_at_uri(kind: JobKind, run: RunRequest) -> Any:
    """``run`` in a local working copy mirrored to its ``output`` URI, copied up after the
    reports the job's kind says change it."""
    uri = str(run.output)

    def run_mirrored(local: Path, sync: Callable[[bool], None]) -> Any:
        def report(r: Report) -> bool | None:
            sync(kind.syncs_after(r))
            return None if run.on_report is None else run.on_report(r)

        return kind.train(run.at(local, report, uri))

    return storage.run_at_uri(uri, resume=run.resume, run=run_mirrored)


def evaluate(
    checkpoint: str | Path,
    *,
    episodes: int = 10,
    seed: int = 0,
    video: str | Path | None = None,
    env_module: str | None = None,
) -> EvalResult:
    """Greedy and sampling returns of an RL checkpoint (or a run directory's newest) over
    ``episodes`` fresh episodes each; ``video`` records one greedy episode (.gif or .mp4).
    A checkpoint whose env is registered by a module of its own (``package.module:EnvId``) is
    refused unless ``env_module`` names that module: a checkpoint never makes rlgen import
    anything by itself."""
    from algorithms.evaluate import evaluate as evaluate_rl

    quiet()
    _as_user_error(check_seed, "--seed", seed)
    return _read_from_storage(
        checkpoint,
        lambda ckpt: evaluate_rl(
            ckpt, episodes=episodes, seed=seed, video=None if video is None else str(video),
            env_module=env_module,
        ),
    )  # fmt: skip


def record(
    env: str | None = None,
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
    """Record ``steps`` env steps of an Atari game as a dataset the generative jobs read
    (``runkit.recording``: single 84x84 frames with episode, step, action, reward and the end
    flags; episodes split train/test). The policy: random, or ``checkpoint``'s greedy action
    with a random one at probability ``epsilon``. ``num_env_runners`` rollout actors each
    write their own files. Returns a ``RecordResult`` (also ``recording.json``)."""
    from algorithms.record import record as record_rl

    quiet()
    return record_rl(
        env, steps=steps, out=out, checkpoint=checkpoint, epsilon=epsilon,
        num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
        seed=seed, env_module=env_module,
    )  # fmt: skip


def sample(
    checkpoint: str | Path,
    *,
    n: int = 64,
    out: str | Path = "samples.png",
    seed: int = 0,
    complete_from: str | None = None,
    sampler: str = "cached",
) -> SampleResult:
    """A PNG grid of ``n`` samples from a generative checkpoint (or a run directory's newest);
    with ``complete_from`` (a dataset, PixelCNN) test images next to completions. ``sampler``
    (PixelCNN): ``cached`` (default) or ``naive``, the reference; both draw the same images."""
    from generative.sampling import check_grid_size, sample_grid

    quiet()
    _as_user_error(check_seed, "--seed", seed)
    check_grid_size(n)  # before a checkpoint at a URI is copied here
    return _read_from_storage(
        checkpoint,
        lambda ckpt: sample_grid(
            ckpt, n=n, out=out, seed=seed, complete_from=complete_from, sampler=sampler
        ),
    )


T = TypeVar("T", EvalResult, SampleResult)


def _read_from_storage(checkpoint: str | Path, read: Callable[[str | Path], T]) -> T:
    """``read(checkpoint)``; a checkpoint or run stored at a URI is copied here first and the
    result names the URI."""
    if not storage.is_uri(checkpoint):
        return read(checkpoint)
    uri = str(checkpoint)
    local = storage.fetch(uri)
    result = read(local)
    named = storage.local_to_uri(result.checkpoint, local, uri) or result.checkpoint
    return dataclasses.replace(result, checkpoint=named)


def tune(
    experiment: Any,
    *,
    num_samples: int | None = None,
    search: str = "random",
    output: str | Path | None = None,
    resume: bool = False,
    max_env_steps: int | None = None,
    time_budget_s: float | None = None,
    epochs: int | None = None,
    dataset: str | None = None,
    overrides: dict[str, Any] | None = None,
    config: str | Path | None = None,
    space: dict[str, Any] | None = None,
    seed: int | None = None,
    max_concurrent: int | None = None,
) -> Any:
    """Run a Ray Tune experiment: a name from ``tune_configs`` (``rlgen tune --list``) or a
    ``tuning.experiment.Experiment``. Each trial is an ordinary rlgen run under
    ``<output>/trials/``; per-trial limits as in ``train``; ``overrides`` / ``config`` fix keys
    for every trial, ``space`` adds or replaces searched keys (Tune domains). With ``resume``,
    the experiment in ``output`` continues. Returns a ``TuneResult`` (also results.json)."""
    from runkit.overrides import merge_overrides
    from tune_configs import load_experiment
    from tuning.run import tune as run_experiment

    quiet()
    if seed is not None:
        _as_user_error(check_seed, "--seed", seed)
    if time_budget_s is not None:
        _as_user_error(check_range, "--time-budget-s", time_budget_s)  # a finite number
    cluster.join_if_addressed()
    if storage.is_uri(output):
        raise UserError(f"tune --output {output}: an experiment directory must be local")
    fixed = {
        **(merge_overrides(str(config), []) if config is not None else {}),
        **(overrides or {}),
    }
    exp = load_experiment(experiment) if isinstance(experiment, str) else experiment
    return run_experiment(
        exp, num_samples=num_samples, search=search, output=output, resume=resume,
        max_env_steps=max_env_steps, time_budget_s=time_budget_s, epochs=epochs,
        dataset=dataset, overrides=fixed or None, space=space, seed=seed,
        max_concurrent=max_concurrent,
    )  # fmt: skip


def _as_user_error(check: Callable[..., None], *args: Any) -> None:
    """Run one of ``runkit.checks``' checks; its ValueError becomes the UserError of bad input."""
    try:
        check(*args)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def key_tables() -> dict[str, Any]:
    """Every job's key table, read from its config class (imports RLlib)."""
    return {job: jobs.kind_of(job).describe(job) for job in jobs.names()}


if __name__ == "__main__":  # as a script (``ray submit ... rlgen.py -- ARGS``): the command
    from rlgen_cli import cli

    cli()
