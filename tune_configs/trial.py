"""One Tune trial = one ordinary rlgen run, in ``<experiment>/trials/<trial id>/``.

The trial calls the same run API as ``rlgen train``: run.json, result.json, TensorBoard curves
(x-axis env steps or epochs), checkpoints and resume are those of any run. What the trial adds:

- RL: each iteration's report goes to Tune, with the checkpoint when the run wrote one (Tune
  keeps copies for Population Based Training, which restores a better trial's checkpoint into a
  worse one under a perturbed config). Generative: the Ray Train job inside the trial reports
  every epoch to Tune through Tune's ``TuneReportCallback``.
- The last report of a run goes to Tune only after the run has written result.json, so that a
  scheduler's stop decision on it (ASHA at its last rung) cannot cut the run short.
- Where it starts: a checkpoint from another trial (a PBT exploit) -> continue from it with this
  trial's new config; else its own run directory with a checkpoint (the experiment was resumed,
  or Tune restarted the trial) -> continue from its newest; a run directory that already holds
  result.json -> the trial had finished: report that result again and train nothing; else a
  fresh run. Each start is one line in ``trials/<trial id>.log``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from runkit.paths import make_private_dirs
from runkit.rundir import RESULT_FILE, RUN_FILE, read_json, write_json_atomic

TRIAL_LOG_SUFFIX = ".log"  # trials/<trial id>.log, beside the run directory
ORIGIN_FILE = "rlgen_trial.json"  # in each checkpoint a trial reports: which trial wrote it
EXPLOIT_DIR = "exploited_checkpoint"


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    """What every trial of an experiment shares (the sampled config comes from Tune)."""

    job: str
    is_rl: bool
    target: str
    trials_dir: str
    fixed: dict[str, Any]
    limits: dict[str, Any]
    seed: int
    num_workers: int = 1
    checkpoint_every: int = 10


def trial_log(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + TRIAL_LOG_SUFFIX)


def _log(run_dir: Path, line: str) -> None:
    make_private_dirs(run_dir.parent)  # mode 0700, as every directory rlgen makes
    with open(trial_log(run_dir), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def _finished_metrics(run_dir: Path, is_rl: bool) -> dict[str, Any]:
    """A finished trial's result.json as the metrics it last reported."""
    result = read_json(run_dir / RESULT_FILE)
    if is_rl:
        return {
            "episode_return_mean": result["episode_return_mean"],
            "env_steps": result["env_steps"],
            "wall_time_s": result["wall_time_s"],
        }
    return {"test_nll_nats": result["test_nll_nats"], "epoch": result["epochs"]}


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Tune's function trainable: ``config`` holds the sampled config keys."""
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    run_dir = Path(setup.trials_dir) / trial_id
    if (run_dir / RESULT_FILE).is_file():
        _log(run_dir, "finished before: its result reported again, nothing trained")
        tune.report(_finished_metrics(run_dir, setup.is_rl))
        return
    overrides = {**setup.fixed, **config}
    if setup.is_rl:
        _rl_trial(overrides, setup, run_dir, trial_id)
    else:
        _generative_trial(overrides, setup, run_dir)


def _rl_trial(overrides: dict[str, Any], setup: TrialSetup, run_dir: Path, trial_id: str) -> None:
    from ray import tune

    from algorithms import run_loop
    from algorithms.checkpoints import PATTERN, STATE_FILE
    from runkit.checkpoints import checkpoints_in

    start_from = None
    given = tune.get_checkpoint()
    if given is not None:
        with given.as_directory() as d:
            origin = read_json(Path(d) / ORIGIN_FILE).get("trial_id")
            if origin != trial_id:  # a PBT exploit: the donor's weights, this trial's config
                start_from = run_dir / EXPLOIT_DIR
                shutil.rmtree(start_from, ignore_errors=True)
                shutil.copytree(d, start_from)
    own = checkpoints_in(run_dir, marker=STATE_FILE, pattern=PATTERN)
    if start_from is not None:
        _log(run_dir, f"exploit: continues from trial {origin}'s checkpoint with {overrides}")
    elif own:
        _log(run_dir, f"resumed from {own[-1].name}")
    else:
        if run_dir.exists():  # started before and stopped before its first checkpoint
            shutil.rmtree(run_dir)
        _log(run_dir, f"fresh start with {overrides}")

    held: list[Any] = []

    def report(rep: Any) -> bool:
        if rep.last:  # reported once the run is complete (below)
            held.append(rep)
        else:
            _report_rl(rep, trial_id)
        return False

    run_loop.train(
        setup.job,
        env=setup.target,
        overrides=overrides,
        output=run_dir,
        resume=bool(own) or start_from is not None,
        on_report=report,
        start_from=start_from,
        seed=setup.seed,
        checkpoint_every=setup.checkpoint_every,
        video_frames=0,
        **setup.limits,
    )
    if held:
        _report_rl(held[-1], trial_id)


def _report_rl(rep: Any, trial_id: str) -> None:
    from ray import tune

    checkpoint = None
    if rep.checkpoint is not None:
        write_json_atomic(Path(rep.checkpoint) / ORIGIN_FILE, {"trial_id": trial_id})
        checkpoint = tune.Checkpoint.from_directory(rep.checkpoint)
    tune.report(dict(rep.metrics), checkpoint=checkpoint)


def _generative_trial(overrides: dict[str, Any], setup: TrialSetup, run_dir: Path) -> None:
    from ray import tune

    from generative import run_loop

    resume = (run_dir / RUN_FILE).is_file()
    _log(run_dir, "resumed (Ray Train continues from its last checkpoint)" if resume else
         f"fresh start with {overrides}")  # fmt: skip
    run_loop.train(
        setup.job,
        dataset=None if resume else setup.target,
        overrides=overrides,
        epochs=setup.limits.get("epochs"),
        num_workers=None if resume else setup.num_workers,
        seed=None if resume else setup.seed,
        output=run_dir,
        resume=resume,
        train_callbacks=[_epochs_but_the_last(_final_epoch(setup, overrides))],
    )
    tune.report(_finished_metrics(run_dir, is_rl=False))


def _final_epoch(setup: TrialSetup, overrides: dict[str, Any]) -> int:
    from generative.configure import load_job

    epochs = setup.limits.get("epochs") or overrides.get("epochs")
    return int(epochs or load_job(setup.job).config_class().epochs)


def _epochs_but_the_last(final_epoch: int) -> Any:
    """Tune's callback for Ray Train reports, holding back the last epoch: the trial reports
    it itself once result.json is written."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class EpochsButTheLast(TuneReportCallback):  # type: ignore[misc]
        def after_report(self, run_context: Any, metrics: list, checkpoint: Any) -> None:
            if metrics and metrics[0].get("epoch", 0) < final_epoch:
                super().after_report(run_context, metrics, checkpoint)

    return EpochsButTheLast()
