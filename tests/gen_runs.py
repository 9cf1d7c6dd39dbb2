"""The generative jobs' learning runs on mnist5k (default settings, seed 0, one Train worker),
each trained once per test process through the Python API on the session's Ray instance and
read by several tests: each job's learning test, the PixelCNN-against-VAE comparison, and the
Train controller's poll interval (recorded at every report of the VAE's run). The caller holds
the ``ray_local`` fixture."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class LearningRun:
    out: Path  # the run directory
    result: dict[str, Any]  # its result.json
    stderr: str  # what the run printed on stderr (the progress lines)
    poll_intervals: list[str]  # the controller's health-check interval at each report
    driver_kept_env: bool  # the driver's environment after the run is as it was before


_RUNS: dict[str, LearningRun | BaseException] = {}


def _record_poll_interval(path: str) -> Any:
    """A Ray Train callback (it runs in the job's controller process) that writes the interval
    the controller polls its workers at to ``path`` at each report."""
    from ray.train import UserCallback

    class Record(UserCallback):
        def after_report(self, run_context: Any, metrics: Any, checkpoint: Any) -> None:
            import gc

            from ray.train.v2._internal.execution.controller import TrainController

            (controller,) = [o for o in gc.get_objects() if isinstance(o, TrainController)]
            with open(path, "a") as f:
                f.write(f"{controller._health_check_interval_s}\n")

    return Record()


def learning_run(model: str, tmp_path_factory: pytest.TempPathFactory) -> LearningRun:
    """``model`` trained for its ``expected.MNIST5K_EPOCHS`` on mnist5k (once per process; a
    failed run fails every test that asks for it without running again)."""
    if model not in _RUNS:
        try:
            _RUNS[model] = _train(model, tmp_path_factory.mktemp(f"{model}-mnist5k"))
        except BaseException as exc:
            _RUNS[model] = exc
            raise
    run = _RUNS[model]
    if isinstance(run, BaseException):
        raise RuntimeError(f"the {model} learning run failed earlier in this session") from run
    return run


def _train(model: str, root: Path) -> LearningRun:
    import importlib

    from generative.run_loop import TRAIN_POLL_ENV, train

    expected = importlib.import_module(f"generative.{model}.expected")
    seen, out, stderr = root / "controller-env.txt", root / "run", io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(TRAIN_POLL_ENV, raising=False)
        with contextlib.redirect_stderr(stderr):
            train(
                model, epochs=expected.MNIST5K_EPOCHS, seed=0, overrides={}, output=out,
                train_callbacks=[_record_poll_interval(str(seen))],
            )  # fmt: skip
        kept = TRAIN_POLL_ENV not in os.environ
    return LearningRun(
        out=out,
        result=json.loads((out / "result.json").read_text()),
        stderr=stderr.getvalue(),
        poll_intervals=seen.read_text().splitlines(),
        driver_kept_env=kept,
    )
