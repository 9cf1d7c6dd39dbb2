"""The generative run loop: a Ray Train ``TorchTrainer`` with one worker per ``num_workers``
(DDP, GPU use automatic), the dataset check, ``FailureConfig`` retries that resume from the last
checkpoint, ``--resume``, progress and the caller's per-epoch callback through
``runkit.relay``, and result.json. The epochs themselves run in ``worker_loop``."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generative.checkpoints import (
    KEEP_CHECKPOINTS,
    RUN_NAME,
    TRAIN_DIR,
    drop_unregistered_checkpoints,
    read_state,
    registered_checkpoint,
)
from generative.configure import GenRunSpec, build_config
from generative.shards import read_here
from generative.worker_loop import IMAGES_DIR, progress_text, train_loop_per_worker
from runkit import cluster
from runkit.checks import check_range
from runkit.errors import RunFailed, UserError, first_line
from runkit.relay import Relay
from runkit.results import STOP_BY_CALLBACK, GenerativeResult, OnReport, Report, write_result
from runkit.rundir import open_run, write_spec

# Ray Train's controller collects the workers' reports (and notices failed workers) once per
# health-check interval, 2 s unless set; each epoch's rank 0 waits for its checkpoint to be
# committed, so short epochs (small datasets, Tune sweeps) and the end of every job waited up to
# that long. rlgen's jobs poll every TRAIN_POLL_INTERVAL_S unless the user set the variable.
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
TRAIN_POLL_INTERVAL_S = 0.5
# Ray Train starts a preemption watcher (an actor: one more process, a second of CPU on two
# cores) that moves the workers off a node being drained. A one-node instance has no other
# node to move to, so jobs there run without it unless the user set the variable.
PREEMPTION_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


@contextlib.contextmanager
def train_settings(*, one_node: bool) -> Iterator[None]:
    """While a trainer starts its controller (Ray Train hands the driver's values of its
    variables on to it): ``TRAIN_POLL_ENV`` set to ``TRAIN_POLL_INTERVAL_S`` and, on a one-node
    instance, ``PREEMPTION_ENV`` off; each unless the user set it. Then as they were."""
    wanted = {TRAIN_POLL_ENV: str(TRAIN_POLL_INTERVAL_S)}
    if one_node:
        wanted[PREEMPTION_ENV] = "0"
    added = [name for name in wanted if name not in os.environ]
    os.environ.update({name: wanted[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def train(
    model: str,
    *,
    dataset: str | None = None,
    overrides: dict[str, Any],
    epochs: int | None = None,
    num_workers: int | None = None,
    use_gpu: str | None = None,
    max_failures: int | None = None,
    seed: int | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    on_report: OnReport | None = None,
    train_callbacks: list[Any] | None = None,
    storage: str | None = None,
) -> GenerativeResult:
    """A fresh run, or with ``resume`` the run in ``output`` continued (``epochs`` and other
    overrides may be raised, ``max_failures`` changed; the dataset stays). ``train_callbacks``:
    more Ray Train callbacks for the trainer's RunConfig (a Tune trial's reports each epoch to
    Tune). ``storage``: the URI the run is stored at (``output`` is then its local working
    copy): Ray Train keeps its checkpoints there; rank 0 copies the run directory there."""
    overrides = dict(overrides)
    if epochs is not None:
        overrides["epochs"] = epochs
    checked: dict[str, Any] = {}  # the config, built and checked once by prepare

    def fresh() -> GenRunSpec:
        given: dict[str, Any] = {
            "dataset": dataset, "num_workers": num_workers, "use_gpu": use_gpu, "seed": seed,
            "max_failures": max_failures,
        }  # fmt: skip
        return GenRunSpec(
            model=model, overrides=overrides, **{k: v for k, v in given.items() if v is not None}
        )

    def prepare(spec: GenRunSpec) -> None:
        checked["config"] = check_spec(spec)

    spec, run_dir = open_run(
        GenRunSpec,
        kind="generative",
        job=model,
        job_field="model",
        output=output,
        resume=resume,
        fresh=fresh,
        prepare=prepare,
        prefix=lambda s: s.model,
        given={"dataset": dataset, "overrides": overrides, "max_failures": max_failures},
        keep=("dataset",),
        write_on_resume=False,
    )
    if resume and storage is None:
        check_resumed_checkpoint(run_dir)
    write_spec(run_dir, "generative", spec)
    return run(
        spec, run_dir, checked["config"], on_report=on_report, train_callbacks=train_callbacks,
        storage=storage,
    )  # fmt: skip


def check_resumed_checkpoint(run_dir: Path) -> None:
    """The checkpoint a resumed run continues from, loaded and checked: Ray Train would retry a
    damaged one max_failures times, then fail with the worker's traceback; it is refused here,
    before run.json changes."""
    resumed_from = registered_checkpoint(run_dir)
    if resumed_from is not None:
        read_state(resumed_from, verb="restored")


def check_spec(spec: GenRunSpec) -> Any:
    """Every part of ``spec`` checked before anything is written; the run's config, built and
    checked here once (``build_config``), is returned for the run to use."""
    from generative.data.images import check_dataset, resolve

    config = build_config(spec)
    if spec.use_gpu not in cluster.GPU_CHOICES:
        raise UserError(f"--use-gpu {spec.use_gpu}: one of {', '.join(cluster.GPU_CHOICES)}")
    if spec.use_gpu == "yes":  # a cluster short of GPUs is refused before anything is written
        cluster.connect()
        cluster.decide_gpu(spec.use_gpu, spec.num_workers)
    try:
        check_range("max_failures", spec.max_failures, low=0, integer=True)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    check_dataset(resolve(spec.dataset))
    return config


def train_events(mailbox: Any, max_failures: int) -> Any:
    """A Ray Train callback (it runs in Train's controller): tells rank 0 when an epoch's
    checkpoint is registered (``relay.commit``; rank 0 announces the epoch only then, so a
    worker lost right after its report never makes an epoch count twice), and tells the
    caller's terminal about each failed attempt: which workers failed and why, and that the
    workers restart from the last checkpoint (or that the failures allowed are used up)."""
    from ray.train import UserCallback

    from runkit import relay
    from runkit.errors import first_line

    class TrainEvents(UserCallback):
        def __init__(self) -> None:
            self.failures = 0

        def after_report(self, run_context: Any, metrics: list, checkpoint: Any) -> None:
            if checkpoint is not None:
                relay.commit(mailbox, int(metrics[0]["epoch"]))

        def after_exception(self, run_context: Any, worker_exceptions: dict) -> None:
            self.failures += 1
            ranks = ", ".join(str(r) for r in sorted(worker_exceptions))
            exc = worker_exceptions[min(worker_exceptions)]
            what = f"{type(exc).__name__}: {first_line(exc)}"[:300]
            then = (
                f"restarting the workers from the last checkpoint (failure {self.failures} of "
                f"{max_failures} allowed, max_failures)"
                if self.failures <= max_failures
                else f"no retries left (max_failures={max_failures})"
            )
            relay.notice(mailbox, f"Train worker(s) {ranks} failed ({what}); {then}")

    return TrainEvents()


def train_failed(error: Exception, spec: GenRunSpec, run_dir: Path, storage: str | None) -> Any:
    """One line for a job whose workers failed more often than ``max_failures`` allows: the
    first failing worker's error (not Ray Train's traceback) and the checkpoint to go on from."""
    failures = getattr(error, "worker_failures", None) or {}
    cause = failures[min(failures)] if failures else error
    cause = getattr(cause, "cause", None) or cause  # a worker's exception, unwrapped
    last = None
    if storage is None:
        last = registered_checkpoint(run_dir)
        drop_unregistered_checkpoints(run_dir)
    return RunFailed(
        f"{spec.model}: the Train workers failed {spec.max_failures + 1} time(s) "
        f"(max_failures={spec.max_failures}), last with {type(cause).__name__}: "
        f"{first_line(cause)[:200]}; the last good checkpoint is "
        f"{last or 'none (no epoch ended)'}: fix the cause and continue with --resume"
    )


def cpus_per_worker(num_workers: int) -> float:
    """Whole CPUs per Train worker where the cluster has one to spare for Ray Data's read
    tasks (each asks for a whole CPU); otherwise a share that leaves one CPU free. With every
    CPU held by a worker the data pipeline could never run and the job would wait forever."""
    cpus = cluster.cluster_cpus() or 1.0
    if cpus - num_workers >= 1:
        return 1.0
    return max(0.1, (cpus - 1.0) / num_workers)


def run(
    spec: GenRunSpec,
    run_dir: Path,
    config: Any,
    *,
    on_report: OnReport | None = None,
    train_callbacks: list[Any] | None = None,
    storage: str | None = None,
) -> GenerativeResult:
    """Run (or continue: Ray Train resumes from the run's last checkpoint) the job with
    ``config``, the spec's config as ``check_spec`` built and checked it; return the result
    (also written as result.json)."""
    from ray.train.v2.api.exceptions import TrainingFailedError

    from generative.data.images import check_dataset, resolve

    dataset = resolve(spec.dataset)
    h, w, c = check_dataset(dataset)["train"].shape
    cluster.connect()  # no API server: its one user here is left out (generative/train_compat.py)
    use_gpu = cluster.decide_gpu(spec.use_gpu, spec.num_workers)

    def show(report: Report) -> None:
        print(progress_text(spec.model, config.epochs, report.metrics), file=sys.stderr, flush=True)

    with Relay(show, on_report) as relay:
        trainer = make_trainer(
            spec, run_dir, config, relay, dataset=dataset, shape=[c, h, w], use_gpu=use_gpu,
            storage=storage, train_callbacks=train_callbacks,
        )  # fmt: skip
        try:
            with train_settings(one_node=cluster.alive_nodes() == 1):
                result = trainer.fit()
        except TrainingFailedError as exc:  # Ray Train raises it once the retries are spent
            raise train_failed(exc, spec, run_dir, storage) from None
    if result.error is not None:
        raise train_failed(result.error, spec, run_dir, storage)
    if relay.failure is not None:
        last = registered_checkpoint(run_dir) if storage is None else result.checkpoint
        last_path = getattr(last, "path", last)
        raise RunFailed(
            f"{relay.failure}; the last good checkpoint is {last_path or 'none (no epoch ended)'}"
        )
    out = run_result(spec, run_dir, result, use_gpu=use_gpu, stopped=relay.stopped)
    write_result(run_dir, out)
    return out


def make_trainer(
    spec: GenRunSpec,
    run_dir: Path,
    config: Any,
    relay: Relay,
    *,
    dataset: str,
    shape: list[int],
    use_gpu: bool,
    storage: str | None,
    train_callbacks: list[Any] | None,
) -> Any:
    """The ``TorchTrainer`` of the run: its workers get ``config`` as its checked dict."""
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from generative import train_compat
    from generative.data.images import split_path

    # A run stored at a URI keeps its Train checkpoints there: every worker's node reaches it.
    storage_path = (
        str(run_dir / TRAIN_DIR) if storage is None else f"{storage.rstrip('/')}/{TRAIN_DIR}"
    )
    train_split: str | None = split_path(dataset, "train")
    datasets: dict[str, Any] = {}
    if not read_here(str(train_split)):
        datasets["train"] = ray.data.read_parquet(str(train_split)).select_columns(["image"])
        train_split = None
    trainer_class = train_compat.LeanTorchTrainer if train_compat.lean_here() else TorchTrainer
    return trainer_class(
        train_loop_per_worker,
        train_loop_config={
            "model": spec.model,
            "config": config.to_dict(),  # checked again on arrival (worker_loop)
            "seed": spec.seed,
            "shape": shape,
            "run_dir": str(run_dir),
            "test_split": split_path(dataset, "test"),
            "train_split": train_split,  # None: Ray Data's shard (generative/shards.py)
            "relay": relay.handle,
            "wait_for_answers": relay.waits,
            "storage": storage,
        },
        scaling_config=ScalingConfig(
            num_workers=spec.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker(spec.num_workers)},
        ),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
            callbacks=[train_events(relay.handle, spec.max_failures), *(train_callbacks or [])],
        ),
        datasets=datasets,
    )


def run_result(
    spec: GenRunSpec, run_dir: Path, result: Any, *, use_gpu: bool, stopped: bool
) -> GenerativeResult:
    """The run's result from Ray Train's (its last epoch's metrics and checkpoint)."""
    metrics = dict(result.metrics or {})
    return GenerativeResult(
        model=spec.model,
        dataset=spec.dataset,
        epochs=int(metrics.get("epoch", 0)),
        wall_time_s=round(float(metrics.get("elapsed_s", math.nan)), 3),
        train_images_per_s=round(float(metrics.get("train_images_per_s", math.nan)), 1),
        test_nll_nats=metrics.get("test_nll_nats"),
        test_bits_per_dim=metrics.get("test_bits_per_dim"),
        checkpoint=result.checkpoint.path if result.checkpoint is not None else None,
        samples_png=str(run_dir / IMAGES_DIR / "samples.png"),
        tensorboard_dir=str(run_dir / "tensorboard"),
        num_workers=spec.num_workers,
        use_gpu=use_gpu,
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        stop_reason=STOP_BY_CALLBACK if stopped else "epochs",
        run_dir=str(run_dir),
    )
