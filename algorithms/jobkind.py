"""RL algorithms as a kind of job (``runkit.jobkind.JobKind``): how the API, the command line and
Tune train, check, size and rank an RL run. Nothing heavy is imported at module level."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from algorithms import ALGORITHMS
from runkit.jobkind import JobKind, RunRequest
from runkit.results import Report, RLResult
from runkit.rundir import RESULT_FILE, read_json, write_json_atomic
from runkit.trials import EXPLOIT_DIR, ORIGIN_FILE, TrialSetup, last_report, log_line

# What an RL trial reports to Tune besides the run's own metrics, and what experiments rank by:
# the mean of the 100-game return over the trial's env-step budget (the area under its learning
# curve divided by the budget; a run that stopped early keeps its last return for the rest; see
# ReturnCurve). Unlike the final return, it keeps separating trials that all reach the stop
# reward: the one that got there in fewer env steps scores higher.
CURVE_METRIC = "return_over_budget"
CURVE_FILE = "rlgen_trial_curve.json"  # in a trial's run directory: the value it ended with


class RLKind(JobKind):
    noun = "RL jobs"
    trials_need_api_server = False  # RLlib and Tune's trials never ask Ray's state API
    target_arg = "env"
    target_flag = "--env"
    own_args = (
        "env", "stop_reward", "max_env_steps", "time_budget_s", "num_env_runners",
        "num_envs_per_env_runner", "checkpoint_every", "video_frames",
    )  # fmt: skip
    limit_args = ("max_env_steps", "time_budget_s")
    resource_keys = (
        "num_env_runners", "num_cpus_per_env_runner", "num_gpus_per_env_runner", "num_learners",
        "num_cpus_per_learner", "num_gpus_per_learner", "num_cpus_for_main_process",
    )  # fmt: skip
    metric, mode, time_key = CURVE_METRIC, "max", "env_steps"
    live_metric = "episode_return_mean"

    def jobs(self) -> dict[str, str]:
        return dict(ALGORITHMS)

    def describe(self, job: str) -> dict[str, Any]:
        from algorithms.keys import describe

        return describe(job)

    def train(self, run: RunRequest) -> RLResult:
        from algorithms.run_loop import train

        return train(
            run.job, env=run.target, overrides=run.overrides, output=run.output,
            resume=run.resume, on_report=run.on_report, importer=self.imported, **run.args,
        )  # fmt: skip

    def syncs_after(self, report: Report) -> bool:
        return report.checkpoint is not None or report.last

    def summary(self, result: RLResult) -> str:
        return (
            f"{'solved' if result.solved else 'stopped'} after {result.env_steps:,} env steps "
            f"in {result.wall_time_s:.0f} s"
        )

    def find_checkpoint(self, run_dir: Path) -> Path:
        from algorithms.checkpoints import find_checkpoint

        return find_checkpoint(run_dir)

    # --- Tune ---------------------------------------------------------------------------------

    def space_keys(self, job: str) -> tuple[str, set[str]]:
        from algorithms.configure import config_class, settable_keys

        cls = config_class(job)
        return cls.__name__, set(settable_keys(cls()))

    def check_trial(self, job: str, target: str, overrides: dict[str, Any], seed: int) -> Any:
        from algorithms.configure import RLRunSpec, build_config
        from envs import permit_env_module

        permit_env_module(target)  # the experiment's env, named by its author as `train`'s is
        return build_config(
            RLRunSpec(algorithm=job, env=target, overrides=overrides, seed=seed),
            frozen=True,
            importer=self.imported,
        )

    def trial_resources(
        self, job: str, target: str, fixed: dict[str, Any], config: Any, num_workers: int
    ) -> tuple[Any, dict[str, float]]:
        """The Algorithm process, its rollout actors and remote Learners, as RLlib asks for
        them (``default_resource_request``), GPUs for the Learners where the cluster has them."""
        from algorithms.configure import RLRunSpec
        from algorithms.run_loop import placed

        # The fixed keys are every trial's overrides: a fixed num_gpus_per_learner is kept.
        config = placed(config, RLRunSpec(algorithm=job, env=target, overrides=fixed))
        pgf = config.algo_class.default_resource_request(config)
        return pgf, dict(pgf.required_resources)

    def asha_clock(self, limits: dict[str, Any]) -> tuple[str, int]:
        if limits.get("max_env_steps") is not None:
            return "env_steps", int(limits["max_env_steps"])
        return "wall_time_s", int(limits.get("time_budget_s") or 3600)

    def run_trial(
        self, overrides: dict[str, Any], setup: TrialSetup, run_dir: Path, trial_id: str
    ) -> None:
        """Each iteration's report goes to Tune, with the checkpoint when the run wrote one
        (Population Based Training restores a better trial's checkpoint into a worse one under
        a perturbed config); the last one only once result.json is written."""
        from algorithms import run_loop
        from algorithms.checkpoints import PATTERN, STATE_FILE
        from runkit.checkpoints import checkpoints_in

        start_from, origin = _exploited(run_dir, trial_id)
        own = checkpoints_in(run_dir, marker=STATE_FILE, pattern=PATTERN)
        if start_from is not None:
            log_line(
                run_dir, f"exploit: continues from trial {origin}'s checkpoint with {overrides}"
            )
        elif own:
            log_line(run_dir, f"resumed from {own[-1].name}")
        else:
            if run_dir.exists():  # started before and stopped before its first checkpoint
                shutil.rmtree(run_dir)
            log_line(run_dir, f"fresh start with {overrides}")
        curve = ReturnCurve(setup.limits.get("max_env_steps"))
        held: list[tuple[Report, float]] = []

        def report(rep: Report) -> bool:
            if rep.last:  # reported once the run is complete (below); its value kept before
                final = curve.final_after(rep)  # result.json is written (a finished trial
                write_json_atomic(run_dir / CURVE_FILE, {CURVE_METRIC: final})  # reports it)
                held.append((rep, final))
            else:
                steps, ret = rep.metrics["env_steps"], rep.metrics["episode_return_mean"]
                _report(rep, curve.add(int(steps), float(ret)), trial_id)
            return False

        run_loop.train(
            setup.job, env=setup.target, overrides=overrides, output=run_dir,
            resume=bool(own) or start_from is not None, on_report=report, start_from=start_from,
            importer=self.imported, seed=setup.seed, checkpoint_every=setup.checkpoint_every,
            video_frames=0, **setup.limits,
        )  # fmt: skip
        if held:
            _report(*held[-1], trial_id=trial_id, last=True)

    def finished_metrics(self, run_dir: Path) -> dict[str, Any]:
        result = read_json(run_dir / RESULT_FILE)
        return {
            "episode_return_mean": result["episode_return_mean"],
            "env_steps": result["env_steps"],
            "wall_time_s": result["wall_time_s"],
            CURVE_METRIC: read_json(run_dir / CURVE_FILE)[CURVE_METRIC],
        }


class ReturnCurve:
    """The area under a trial's learning curve against env steps, the curve a step function:
    each report's 100-game mean return holds from its env steps to the next report's, and the
    env steps before the first finished game count as a return of 0. ``add`` returns the mean
    over the env steps so far; ``final`` holds the last return to ``budget`` env steps (the
    trial's limit: a run that stopped early keeps its last return for the rest)."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.area, self.steps, self.last = 0.0, 0, 0.0

    def add(self, env_steps: int, ret: float) -> float:
        self.area += self.last * max(0, env_steps - self.steps)
        self.steps = max(self.steps, env_steps)
        if math.isfinite(ret):
            self.last = ret
        return self.area / self.steps if self.steps else math.nan

    def final_after(self, rep: Report) -> float:
        """``final()`` once the run's last report is added."""
        self.add(int(rep.metrics["env_steps"]), float(rep.metrics["episode_return_mean"]))
        return self.final()

    def final(self) -> float:
        end = max(self.steps, self.budget or 0)
        return (self.area + self.last * (end - self.steps)) / end if end else math.nan


def _exploited(run_dir: Path, trial_id: str) -> tuple[Path | None, str | None]:
    """The checkpoint Tune handed this trial when it came from another trial (a PBT exploit),
    copied into the run directory, and that trial's id; (None, None) for the trial's own."""
    from ray import tune

    given = tune.get_checkpoint()
    if given is None:
        return None, None
    with given.as_directory() as d:
        origin = read_json(Path(d) / ORIGIN_FILE).get("trial_id")
        if origin == trial_id:
            return None, None
        start_from = run_dir / EXPLOIT_DIR
        shutil.rmtree(start_from, ignore_errors=True)
        shutil.copytree(d, start_from)
    return start_from, origin


def _report(rep: Report, curve_value: float, trial_id: str, last: bool = False) -> None:
    """The run's report to Tune, with the trial's ranking value and its checkpoint."""
    from ray import tune

    metrics = {**rep.metrics, CURVE_METRIC: curve_value}
    if last:
        metrics = last_report(metrics)
    checkpoint = None
    if rep.checkpoint is not None:
        write_json_atomic(Path(rep.checkpoint) / ORIGIN_FILE, {"trial_id": trial_id})
        checkpoint = tune.Checkpoint.from_directory(rep.checkpoint)
    tune.report(metrics, checkpoint=checkpoint)


RL = RLKind()
