"""``rlgen tune``: check an experiment, build its Tuner, run or resume it, summarize it.

Everything the user gave is checked before the experiment directory is written: the name, the
search space keys and every value a domain can produce (each through the same config checks as
``rlgen train``), the sample count, the search, the limits. The directory holds Tune's own
state (so ``--resume`` continues it), ``experiment.json`` (what was asked for), ``trials/``
(one rlgen run per trial; ``tensorboard --logdir <dir>/trials`` shows them all) and the
summary files.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from runkit import cluster
from runkit.errors import UserError
from runkit.rundir import new_run_dir, read_json, write_json_atomic
from runkit.trials import TrialSetup
from tuning.experiment import SEARCHES, Experiment, candidates, check_keys, is_domain
from tuning.summary import (
    BEST_YAML,
    TRIALS_CSV,
    TRIALS_DIR,
    Progress,
    TuneResult,
    best_row,
    table,
    trial_rows,
    write_outputs,
)
from tuning.trial import run_trial

EXPERIMENT_FILE = "experiment.json"
# Tune saves the experiment's state (which trials exist, which ended) at most this often; a
# short period keeps ``--resume`` after a killed driver close to where it was.
STATE_SAVE_PERIOD_S = "2"
KEEP_TUNE_CHECKPOINTS = 2


# Trials of one experiment (and trials at once): a bound, so that a typo cannot queue 10**9.
MAX_TRIALS = 10_000


def _count_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TRIALS


def customize(
    exp: Experiment,
    *,
    num_samples: int | None,
    max_env_steps: int | None,
    time_budget_s: float | None,
    epochs: int | None,
    dataset: str | None,
    overrides: dict[str, Any] | None,
    space: dict[str, Any] | None,
    seed: int | None,
) -> Experiment:
    """The experiment with the caller's changes, each checked (UserError)."""
    if num_samples is not None and not _count_ok(num_samples):
        raise UserError(f"--num-samples {num_samples}: must be from 1 to {MAX_TRIALS:,}")
    limits = {"max_env_steps": max_env_steps, "time_budget_s": time_budget_s, "epochs": epochs}
    foreign: dict[str, Any] = {
        f"--{k.replace('_', '-')}": v for k, v in limits.items() if k not in exp.limits()
    }
    if dataset is not None and exp.kind.target_arg != "dataset":
        foreign["--dataset"] = dataset
    for flag, value in foreign.items():
        if value is not None:
            raise UserError(f"tune {exp.name}: {flag} is not a setting of a {exp.job} trial")
    for name, value in limits.items():
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise UserError(f"--{name.replace('_', '-')} {value}: must be positive")
    merged = {**exp.space, **(overrides or {}), **(space or {})}
    changes: dict[str, Any] = {"space": merged}
    if num_samples is not None:
        changes["num_samples"] = num_samples
    if seed is not None:
        changes["seed"] = seed
    if dataset is not None:
        changes["target"] = dataset
    given = {k: limits[k] for k in exp.limits()}
    if any(v is not None for v in given.values()):  # a new limit replaces the experiment's
        changes.update(given)
    try:
        return dataclasses.replace(exp, **changes)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_values(exp: Experiment) -> Any:
    """Every value each domain can produce, through the job's own config checks; returns the
    config of the first candidates (RL: to size the trial's resources)."""
    first = {k: candidates(v)[0] for k, v in exp.space.items()}
    built = _build(exp, first)
    for key, value in exp.space.items():
        for candidate in candidates(value)[1:] if is_domain(value) else []:
            _build(exp, {**first, key: candidate})
    return built


def _build(exp: Experiment, overrides: dict[str, Any]) -> Any:
    return exp.kind.check_trial(exp.job, exp.target, overrides, exp.seed)


def trial_resources(exp: Experiment, config: Any) -> tuple[Any, dict[str, float]]:
    """(what Tune reserves for one trial, what one trial occupies in all): the job kind's."""
    return exp.kind.trial_resources(exp.job, exp.target, exp.fixed, config, exp.num_workers)


def concurrency(need: dict[str, float]) -> int:
    """Trials at once: as many as the cluster's CPUs (and GPUs) hold, at least one. A 2-core
    laptop runs two 1-CPU RL trials; a cluster with more nodes runs more without edits."""
    import ray

    have = ray.cluster_resources()
    counts = [
        int(have.get(r, 0.0) // amount) for r, amount in need.items() if amount > 0 and r in have
    ]
    return max(1, min(counts) if counts else 1)


def scheduler(exp: Experiment) -> Any:
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if exp.scheduler == "pbt":  # compares how good trials are now, not over their history
        return PopulationBasedTraining(
            time_attr="training_iteration",
            metric=exp.kind.live_metric,
            mode=exp.mode,
            perturbation_interval=exp.perturbation_interval,
            hyperparam_mutations=exp.searched,
            quantile_fraction=0.25,
            resample_probability=0.25,
        )
    time_attr, max_t = exp.kind.asha_clock(exp.limits())
    return ASHAScheduler(
        time_attr=time_attr,
        max_t=max_t,
        grace_period=max(1, int(max_t * exp.grace_fraction)),
        reduction_factor=2,
    )


def trial_setup(exp: Experiment, out: Path) -> TrialSetup:
    checkpoint_every = exp.perturbation_interval if exp.scheduler == "pbt" else exp.checkpoint_every
    return TrialSetup(
        job=exp.job,
        target=exp.target,
        trials_dir=str(out / TRIALS_DIR),
        fixed=exp.fixed,
        limits=exp.limits(),
        seed=exp.seed,
        num_workers=exp.num_workers,
        checkpoint_every=checkpoint_every,
    )


def trainable(exp: Experiment, out: Path, resources: Any) -> Any:
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(run_trial, setup=trial_setup(exp, out)), resources
    )


def run_config(exp: Experiment, out: Path) -> Any:
    from ray.tune import CheckpointConfig, RunConfig
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return RunConfig(
        name=out.name,
        storage_path=str(out.parent),
        callbacks=[
            Progress(
                name=exp.name,
                metric=exp.metric,
                time_key=exp.kind.time_key,
                trials_dir=str(out / TRIALS_DIR),
                fixed=exp.fixed,
                also=_also(exp),
            ),  # fmt: skip
            JsonLoggerCallback(),
            CSVLoggerCallback(),
        ],
        # PBT registers a trial's latest checkpoint a second time when it exploits; Tune's
        # pruning then deletes a checkpoint twice (or one still to restore): keep all there.
        checkpoint_config=CheckpointConfig(
            num_to_keep=None if exp.scheduler == "pbt" else KEEP_TUNE_CHECKPOINTS
        ),
        verbose=0,
    )


def build_tuner(
    exp: Experiment,
    out: Path,
    *,
    search: str = "random",
    max_concurrent: int | None = None,
    config: Any = None,
) -> Any:
    """The experiment's Tuner (not fitted). Ray must be connected (the trial's resources and
    the concurrency are read from the cluster). ``config``: what ``check_values(exp)`` returned,
    when the caller has checked the values already."""
    from ray import tune

    if config is None:
        config = check_values(exp)
    resources, need = trial_resources(exp, config)
    search_alg = None
    if search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=exp.seed)
    return tune.Tuner(
        trainable(exp, out, resources),
        param_space=exp.searched,
        tune_config=tune.TuneConfig(
            # Population Based Training names its own metric (the scheduler's, not the rank's).
            metric=None if exp.scheduler == "pbt" else exp.metric,
            mode=None if exp.scheduler == "pbt" else exp.mode,
            num_samples=exp.num_samples,
            scheduler=scheduler(exp),
            search_alg=search_alg,
            max_concurrent_trials=max_concurrent or concurrency(need),
            reuse_actors=False,
        ),
        run_config=run_config(exp, out),
    )


def _quiet_tune() -> None:
    # Tune's own tables and per-trial loggers: rlgen prints its own lines and each trial writes
    # its TensorBoard curves against env steps (Tune's would be against iterations).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SAVE_PERIOD_S)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")


def tune(
    experiment: Experiment,
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
    space: dict[str, Any] | None = None,
    seed: int | None = None,
    max_concurrent: int | None = None,
) -> TuneResult:
    """Run an experiment, or with ``resume`` continue the one in ``output``; return the
    summary (also results.json)."""
    from ray import tune as ray_tune

    exp = experiment
    if search not in SEARCHES:
        raise UserError(f"--search {search}: one of {', '.join(SEARCHES)}")
    if search == "optuna" and exp.scheduler == "pbt":
        raise UserError(
            f"--search optuna: {exp.name} uses Population Based Training, which draws its own "
            "configs; use --search random"
        )
    if max_concurrent is not None and not _count_ok(max_concurrent):
        raise UserError(f"--max-concurrent {max_concurrent}: must be from 1 to {MAX_TRIALS:,}")
    if resume:
        out = _resumable(exp, output)
        given = [max_env_steps, time_budget_s, epochs, dataset, overrides, space, seed, num_samples]
        if any(v is not None for v in given):
            raise UserError("--resume continues the experiment as it was started; give only "
                            "--output (and --search as before)")  # fmt: skip
        stored = read_json(out / EXPERIMENT_FILE)
        exp = _stored_experiment(exp, stored)
    else:
        exp = customize(
            exp, num_samples=num_samples, max_env_steps=max_env_steps,
            time_budget_s=time_budget_s, epochs=epochs, dataset=dataset,
            overrides=overrides, space=space, seed=seed,
        )  # fmt: skip
        _check_space_keys(exp, list((overrides or {}).keys()) + list((space or {}).keys()))
        config = check_values(exp)
        out = new_run_dir(None if output is None else str(output), prefix=exp.name, resume=False)
        write_json_atomic(out / EXPERIMENT_FILE, _experiment_record(exp, search))
        print(f"rlgen: experiment directory {out}", file=sys.stderr)
    _quiet_tune()
    cluster.connect()
    if resume:
        resources, _ = trial_resources(exp, check_values(exp))
        tuner = ray_tune.Tuner.restore(
            str(out), trainable=trainable(exp, out, resources), resume_errored=True
        )
    else:
        tuner = build_tuner(exp, out, search=search, max_concurrent=max_concurrent, config=config)
    results = tuner.fit()
    return summarize(exp, results, out)


def _check_space_keys(exp: Experiment, keys: list[str]) -> None:
    """A key the caller added must be one of the job's config keys (UserError)."""
    try:
        check_keys(*exp.kind.space_keys(exp.job), keys)
    except TypeError as exc:
        raise UserError(f"tune {exp.name}: {exc}") from None


def _experiment_record(exp: Experiment, search: str) -> dict[str, Any]:
    return {
        "experiment": exp.name,
        "search": search,
        "job": exp.job,
        "target": exp.target,
        "num_samples": exp.num_samples,
        "limits": exp.limits(),
        "seed": exp.seed,
        "fixed": exp.fixed,
        "searched": {k: repr(v) for k, v in exp.searched.items()},
    }


def _stored_experiment(exp: Experiment, stored: dict[str, Any]) -> Experiment:
    limits = stored.get("limits", {})
    return dataclasses.replace(
        exp,
        target=stored["target"],
        num_samples=stored["num_samples"],
        seed=stored["seed"],
        space={**exp.searched, **stored.get("fixed", {})},
        **{k: limits.get(k) for k in exp.limits()},
    )


def _resumable(exp: Experiment, output: str | Path | None) -> Path:
    from ray.tune import Tuner

    if output is None:
        raise UserError("--resume needs the experiment directory: --output DIR")
    out = Path(output).resolve()
    if not (out / EXPERIMENT_FILE).is_file() or not Tuner.can_restore(str(out)):
        raise UserError(f"--resume {out}: not an rlgen tune experiment directory")
    stored = read_json(out / EXPERIMENT_FILE)
    if stored.get("experiment") != exp.name:
        raise UserError(f"--resume {out}: that is experiment {stored.get('experiment')}, "
                        f"not {exp.name}")  # fmt: skip
    return out


def _also(exp: Experiment) -> tuple[str, ...]:
    """Shown beside the ranking metric: how good each trial was at its end."""
    live = exp.kind.live_metric
    return () if live == exp.metric else (live,)


def summarize(exp: Experiment, results: Any, out: Path) -> TuneResult:
    time_key = exp.kind.time_key
    rows = trial_rows(
        results, metric=exp.metric, time_key=time_key, searched=list(exp.searched),
        trials_dir=out / TRIALS_DIR, also=_also(exp),
    )  # fmt: skip
    best = best_row(rows, metric=exp.metric, mode=exp.mode, time_key=time_key)
    best_checkpoint = None
    if best is not None:
        try:
            best_checkpoint = str(exp.kind.find_checkpoint(out / TRIALS_DIR / best["trial"]))
        except UserError:
            best_checkpoint = None
    best_config = {**exp.fixed, **best["config"]} if best is not None else {}
    result = TuneResult(
        experiment=exp.name,
        job=exp.job,
        target=exp.target,
        metric=exp.metric,
        mode=exp.mode,
        num_trials=len(rows),
        best_trial=None if best is None else best["trial"],
        best_config=best_config,
        best_metric=None if best is None else best[exp.metric],
        best_checkpoint=best_checkpoint,
        best_yaml=None if best is None else str(out / BEST_YAML),
        trials=rows,
        output_dir=str(out),
        tensorboard_dir=str(out / TRIALS_DIR),
        trials_csv=str(out / TRIALS_CSV),
    )
    write_outputs(result, out, train_command=exp.kind.train_command(exp.job, exp.target))
    print(table(rows, metric=exp.metric, time_key=time_key, also=_also(exp)))
    if best is not None:
        print(f"best: trial {best['trial']}, {exp.metric} {best[exp.metric]:.2f}, {best_config}")
        print(f"best checkpoint: {best_checkpoint}")
        print(f"best config: {result.best_yaml}")
    print(f"TensorBoard: tensorboard --logdir {out / TRIALS_DIR}")
    return result
