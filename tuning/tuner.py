"""An experiment's Tuner: the trial's resources and the concurrency read from the cluster,
the scheduler, the trainable (``tuning.trial.run_trial`` with the experiment's setup) and the
run config with rlgen's progress callback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runkit.trials import TrialSetup
from tuning.check import check_values
from tuning.experiment import Experiment
from tuning.summary import TRIALS_DIR, Progress
from tuning.trial import run_trial

# Tune saves the experiment's state (which trials exist, which ended) at most this often; a
# short period keeps ``--resume`` after a killed driver close to where it was.
STATE_SAVE_PERIOD_S = "2"
KEEP_TUNE_CHECKPOINTS = 2


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
                also=exp.also,
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


def quiet_tune() -> None:
    # Tune's own tables and per-trial loggers: rlgen prints its own lines and each trial writes
    # its TensorBoard curves against env steps (Tune's would be against iterations).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SAVE_PERIOD_S)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
