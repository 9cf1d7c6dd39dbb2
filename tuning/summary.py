"""What an experiment shows while it runs and leaves behind.

While trials run: one progress line per trial at most every ``PROGRESS_EVERY_S`` seconds, and
a line when a trial ends. When a trial ends, its hyperparameters and final metrics go into its
own TensorBoard run (HPARAMS view; the curves are already there, against env steps or epochs).
At the end: a table of trials (config, metric, status), the best trial and its checkpoint, as
``results.json`` and ``trials.csv``, and the best config as ``best.yaml``, which
``rlgen train JOB --config best.yaml`` takes unchanged.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from runkit.rundir import write_json_atomic

PROGRESS_EVERY_S = 15.0
RESULTS_FILE, TRIALS_CSV, BEST_YAML = "results.json", "trials.csv", "best.yaml"
TRIALS_DIR = "trials"
HPARAM_METRIC_PREFIX = "hparams/"


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What ``rlgen tune`` returns (also written as results.json)."""

    experiment: str
    job: str
    target: str
    metric: str
    mode: str
    num_trials: int
    best_trial: str | None
    best_config: dict[str, Any]
    best_metric: float | None
    best_checkpoint: str | None
    best_yaml: str | None
    trials: list[dict[str, Any]]
    output_dir: str
    tensorboard_dir: str
    trials_csv: str


def hparam_value(value: Any) -> Any:
    """TensorBoard's HPARAMS view holds numbers, strings and booleans."""
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


def write_hparams(logdir: Path, config: dict[str, Any], metrics: dict[str, float]) -> None:
    """The trial's config and final metrics into its own TensorBoard run: one session whose
    metrics are the ``hparams/<name>`` scalars written beside it."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    finite = {
        HPARAM_METRIC_PREFIX + k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and math.isfinite(v)
    }
    exp, ssi, sei = hparams({k: hparam_value(v) for k, v in config.items()}, finite)
    writer = SummaryWriter(log_dir=str(logdir))
    file_writer = writer._get_file_writer()
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary)
    for tag, value in finite.items():
        writer.add_scalar(tag, value)
    writer.close()


def _callback_base() -> type:
    from ray.tune import Callback

    return Callback


class Progress(_callback_base()):  # type: ignore[misc]
    """Tune callback: progress lines, and the HPARAMS record of every trial that ends."""

    def __init__(
        self,
        *,
        name: str,
        metric: str,
        time_key: str,
        trials_dir: str,
        fixed: dict[str, Any],
        also: tuple[str, ...] = (),
    ) -> None:
        self.name, self.metric, self.time_key, self.also = name, metric, time_key, also
        self.trials_dir, self.fixed = trials_dir, fixed
        self._last: dict[str, float] = {}

    def _line(self, trial: Any, result: dict[str, Any], what: str) -> str:
        value = result.get(self.metric, math.nan)
        return (
            f"[{self.name}] trial {trial.trial_id} {what} | {self.time_key} "
            f"{result.get(self.time_key, 0):,} | {self.metric} {value:.2f} | {trial.config}"
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_: Any):
        now = time.monotonic()
        if now - self._last.get(trial.trial_id, -math.inf) >= PROGRESS_EVERY_S:
            self._last[trial.trial_id] = now
            print(self._line(trial, result, "running"), file=sys.stderr, flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        result = trial.last_result or {}
        print(self._line(trial, result, "ended"), file=sys.stderr, flush=True)
        names = (self.metric, *self.also, self.time_key)
        metrics = {k: result.get(k, math.nan) for k in names}
        config = {**self.fixed, **trial.config}  # every key the trial trained with
        write_hparams(Path(self.trials_dir) / trial.trial_id / "tensorboard", config, metrics)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        print(f"[{self.name}] trial {trial.trial_id} failed: see {trial.path}", file=sys.stderr)


def _status(result: Any, run_dir: Path) -> str:
    """error; finished (the run wrote result.json: a stop criterion or its budget ended it);
    stopped early (the scheduler ended it)."""
    if result.error is not None:
        return "error"
    return "finished" if (run_dir / "result.json").is_file() else "stopped early"


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def trial_rows(
    results: Any,
    *,
    metric: str,
    time_key: str,
    searched: list[str],
    trials_dir: Path,
    also: tuple[str, ...] = (),
) -> list[dict]:
    """One row per trial: its searched config, the ranking ``metric`` and the ``also``
    metrics as last reported, its clock, and how it ended."""
    rows = []
    for r in results:
        metrics = r.metrics or {}
        trial = str(metrics.get("trial_id") or Path(r.path).name)
        rows.append(
            {
                "trial": trial,
                "config": {k: r.config.get(k) for k in searched},
                **{name: _finite(metrics.get(name)) for name in (metric, *also)},
                time_key: metrics.get(time_key),
                "status": _status(r, trials_dir / trial),
            }
        )
    return rows


def best_row(rows: list[dict], *, metric: str, mode: str, time_key: str) -> dict | None:
    """The best final metric; ties go to the trial that needed less of the budget."""
    scored = [r for r in rows if r["status"] != "error" and r[metric] is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(scored, key=lambda r: (sign * r[metric], -(r[time_key] or 0)))


def table(rows: list[dict], *, metric: str, time_key: str, also: tuple[str, ...] = ()) -> str:
    keys = sorted({k for r in rows for k in r["config"]})
    shown = (metric, *also)
    header = ["trial", *keys, *shown, time_key, "status"]
    lines = [header]
    for r in rows:
        values = ["-" if r[m] is None else f"{r[m]:.2f}" for m in shown]
        cells = [str(r["config"].get(k)) for k in keys]
        lines.append([r["trial"], *cells, *values, str(r[time_key]), r["status"]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def write_outputs(result: TuneResult, out: Path, *, train_command: str) -> None:
    write_json_atomic(out / RESULTS_FILE, dataclasses.asdict(result))
    keys = sorted({k for r in result.trials for k in r["config"]})
    with open(out / TRIALS_CSV, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", *keys, result.metric, "status"])
        for r in result.trials:
            writer.writerow(
                [r["trial"], *[r["config"].get(k) for k in keys], r[result.metric], r["status"]]
            )
    if result.best_yaml is not None:
        head = (
            f"# rlgen tune {result.experiment}: best of {result.num_trials} trials "
            f"({result.metric} {result.best_metric}), trial {result.best_trial}\n"
            f"# {train_command} --config {result.best_yaml}\n"
        )
        Path(result.best_yaml).write_text(head + yaml.safe_dump(result.best_config))
