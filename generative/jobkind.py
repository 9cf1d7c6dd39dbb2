"""Generative models as a kind of job (``runkit.jobkind.JobKind``): how the API, the command line
and Tune train, check, size and rank a Ray Train job. Nothing heavy is imported at module
level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generative import MODELS
from runkit import cluster
from runkit.jobkind import JobKind, RunRequest
from runkit.results import GenerativeResult, Report
from runkit.rundir import RESULT_FILE, RUN_FILE, read_json
from runkit.trials import TrialSetup, last_report, log_line

TRIAL_MEMORY_BYTES = 64 * 2**20  # what a trial (waiting on its Train job) reserves


class GenerativeKind(JobKind):
    noun = "generative models"
    target_arg = "dataset"
    target_flag = "--dataset"
    own_args = ("dataset", "epochs", "num_workers", "use_gpu", "max_failures")
    limit_args = ("epochs",)
    metric = live_metric = "test_nll_nats"
    mode, time_key = "min", "epoch"
    exports = ("encoder",)

    def jobs(self) -> dict[str, str]:
        return dict(MODELS)

    def export(self, what: str, source: str) -> dict[str, Any]:
        """``encoder``: a VAE checkpoint's encoder (``generative.export.vae_encoder``)."""
        if what != "encoder":
            return super().export(what, source)
        from generative.export import vae_encoder

        return vae_encoder(source)

    def describe(self, job: str) -> dict[str, Any]:
        from generative.keys import describe

        return describe(job)

    def train(self, run: RunRequest) -> GenerativeResult:
        from generative.run_loop import train

        return train(
            run.job, dataset=run.target, overrides=run.overrides, output=run.output,
            resume=run.resume, on_report=run.on_report, storage=run.storage, **run.args,
        )  # fmt: skip

    def syncs_after(self, report: Report) -> bool:
        return True  # every epoch writes a checkpoint

    def summary(self, result: GenerativeResult) -> str:
        return (
            f"{result.epochs} epochs, test NLL {result.test_nll_nats:.2f} nats "
            f"({result.test_bits_per_dim:.4f} bits/dim); samples in {result.samples_png}"
        )

    def find_checkpoint(self, run_dir: Path) -> Path:
        from generative.checkpoints import find_checkpoint

        return find_checkpoint(run_dir)

    # --- Tune ---------------------------------------------------------------------------------

    def space_keys(self, job: str) -> tuple[str, set[str]]:
        import dataclasses

        from generative.configure import load_job

        cls = load_job(job).config_class
        return cls.__name__, {f.name for f in dataclasses.fields(cls)}

    def check_trial(self, job: str, target: str, overrides: dict[str, Any], seed: int) -> Any:
        from generative import configure
        from generative.data.images import check_dataset, resolve

        spec = configure.GenRunSpec(model=job, dataset=target, overrides=overrides)
        config = configure.build_config(spec)
        check_dataset(resolve(target))
        return config

    def trial_resources(
        self, job: str, target: str, fixed: dict[str, Any], config: Any, num_workers: int
    ) -> tuple[Any, dict[str, float]]:
        """The trial itself only waits on its Ray Train job, whose workers Ray Train places:
        it reserves a little memory and no CPU, and occupies a CPU (or GPU) per Train worker
        plus the one CPU that Ray Data's read tasks need."""
        from ray.tune import PlacementGroupFactory

        need = {"CPU": num_workers + 1.0}
        if cluster.decide_gpu("auto", num_workers):
            need = {"CPU": 1.0, "GPU": float(num_workers)}
        # No CPU for the trial itself: a CPU share held here would leave Ray Data's read tasks
        # short of the whole CPU each asks for (the Train workers hold the rest), a deadlock.
        return PlacementGroupFactory([{"memory": float(TRIAL_MEMORY_BYTES)}]), need

    def asha_clock(self, limits: dict[str, Any]) -> tuple[str, int]:
        return "training_iteration", int(limits.get("epochs") or 1)

    def run_trial(
        self, overrides: dict[str, Any], setup: TrialSetup, run_dir: Path, trial_id: str
    ) -> None:
        """The Ray Train job inside the trial reports every epoch but the last to Tune; the
        trial reports the last once result.json is written."""
        from ray import tune

        from generative import run_loop

        resume = (run_dir / RUN_FILE).is_file()
        log_line(run_dir, "resumed (Ray Train continues from its last checkpoint)" if resume
                 else f"fresh start with {overrides}")  # fmt: skip
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
        tune.report(last_report(self.finished_metrics(run_dir)))

    def finished_metrics(self, run_dir: Path) -> dict[str, Any]:
        result = read_json(run_dir / RESULT_FILE)
        return {"test_nll_nats": result["test_nll_nats"], "epoch": result["epochs"]}


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


GENERATIVE = GenerativeKind()
