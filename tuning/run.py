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
import sys
from pathlib import Path
from typing import Any

from runkit import cluster
from runkit.errors import UserError
from runkit.rundir import new_run_dir, read_json, write_json_atomic
from tuning.check import MAX_TRIALS, check_space_keys, check_values, count_ok, customize
from tuning.experiment import SEARCHES, Experiment
from tuning.summary import (
    BEST_YAML,
    TRIALS_CSV,
    TRIALS_DIR,
    TuneResult,
    best_row,
    table,
    trial_rows,
    write_outputs,
)
from tuning.tuner import build_tuner, quiet_tune, trainable, trial_resources

EXPERIMENT_FILE = "experiment.json"


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
    if max_concurrent is not None and not count_ok(max_concurrent):
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
        check_space_keys(exp, list((overrides or {}).keys()) + list((space or {}).keys()))
        config = check_values(exp)
        out = new_run_dir(None if output is None else str(output), prefix=exp.name, resume=False)
        write_json_atomic(out / EXPERIMENT_FILE, _experiment_record(exp, search))
        print(f"rlgen: experiment directory {out}", file=sys.stderr)
    quiet_tune()
    cluster.connect(api_server=exp.kind.trials_need_api_server)
    if resume:
        resources, _ = trial_resources(exp, check_values(exp))
        tuner = ray_tune.Tuner.restore(
            str(out), trainable=trainable(exp, out, resources), resume_errored=True
        )
    else:
        tuner = build_tuner(exp, out, search=search, max_concurrent=max_concurrent, config=config)
    results = tuner.fit()
    return summarize(exp, results, out)


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


def summarize(exp: Experiment, results: Any, out: Path) -> TuneResult:
    time_key = exp.kind.time_key
    rows = trial_rows(
        results, metric=exp.metric, time_key=time_key, searched=list(exp.searched),
        trials_dir=out / TRIALS_DIR, also=exp.also,
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
    print(table(rows, metric=exp.metric, time_key=time_key, also=exp.also))
    if best is not None:
        print(f"best: trial {best['trial']}, {exp.metric} {best[exp.metric]:.2f}, {best_config}")
        print(f"best checkpoint: {best_checkpoint}")
        print(f"best config: {result.best_yaml}")
    print(f"TensorBoard: tensorboard --logdir {out / TRIALS_DIR}")
    return result
