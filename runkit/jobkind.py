"""The seam between kinds of job: what the Python API, the command line and Tune need from one.

rlgen has two kinds today, RL algorithms (``algorithms.jobkind.RL``) and generative models
(``generative.jobkind.GENERATIVE``); ``jobs.py`` is the registry that lists them. Everything
above the two packages (``rlgen``, ``rlgen_cli``, ``tuning``) asks the registry for a job's
kind and calls these methods; none of it asks which kind it holds. A new kind of job is one
subclass and one line in the registry.

Module-level code of an implementation imports nothing heavy: the registry is read before a
bad input is refused, which must not wait for torch, RLlib or Ray.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from runkit import keytable
from runkit.errors import UserError
from runkit.results import OnReport, Report
from runkit.trials import TrialSetup


@dataclass(frozen=True)
class RunRequest:
    """One run, as the API asks a kind of job for it."""

    job: str
    target: str | None  # what it learns from: the env id or dataset (None on --resume)
    overrides: dict[str, Any]  # config keys
    args: dict[str, Any]  # the kind's other ``own_args`` and ``seed``, None where not given
    output: str | Path | None
    resume: bool
    on_report: OnReport | None
    storage: str | None = None  # the URI the run is stored at (``output``: its local copy)

    def at(self, output: Path, on_report: OnReport, storage: str) -> RunRequest:
        """The same run in a local working copy of ``storage``."""
        return replace(self, output=output, on_report=on_report, storage=storage)


class JobKind(abc.ABC):
    """One kind of job. Class attributes describe it; methods run it."""

    noun: ClassVar[str]  # "RL jobs": how errors name the kind
    target_arg: ClassVar[str]  # the ``train()`` argument naming what it learns from
    target_flag: ClassVar[str]  # and its command-line flag
    own_args: ClassVar[tuple[str, ...]]  # ``train()`` arguments only this kind takes
    limit_args: ClassVar[tuple[str, ...]]  # the per-run limits a Tune trial may set
    metric: ClassVar[str]  # what a Tune experiment ranks trials by (and ASHA compares)
    live_metric: ClassVar[str]  # how good a trial is now: what Population Based Training compares
    mode: ClassVar[str]  # "max" or "min"
    time_key: ClassVar[str]  # a trial's clock: the x-axis of its curves
    resource_keys: ClassVar[tuple[str, ...]] = ()  # config keys that size a run's resources
    # Whether its Tune trials use Ray's API server (Ray Train's placement-group cleaner does): a
    # Tune experiment's embedded instance starts it only then (``runkit.cluster.connect``).
    trials_need_api_server: ClassVar[bool] = True

    @abc.abstractmethod
    def jobs(self) -> dict[str, str]:
        """Job name -> import path of what implements it (no import happens here)."""

    def precheck(self, job: str, overrides: dict[str, Any]) -> None:
        """Refuse bad config keys or values before anything heavy is imported (from the key
        tables generated out of the config classes: ``runkit.keytable``)."""
        keytable.precheck(job, overrides)

    @abc.abstractmethod
    def describe(self, job: str) -> dict[str, Any]:
        """The job's key table (keys, defaults, rules, meanings) from its config class."""

    @abc.abstractmethod
    def train(self, run: RunRequest) -> Any:
        """One run; returns its result, also written as result.json."""

    @abc.abstractmethod
    def syncs_after(self, report: Report) -> bool:
        """Whether a run stored at a URI is copied up after this report."""

    @abc.abstractmethod
    def summary(self, result: Any) -> str:
        """The command line's one-line account of a finished run."""

    @abc.abstractmethod
    def find_checkpoint(self, run_dir: Path) -> Path:
        """The newest checkpoint of a run directory (UserError if none)."""

    # --- what one kind hands another ----------------------------------------------------------

    # What this kind's checkpoints can give another kind's jobs (``export``): "encoder".
    exports: tuple[str, ...] = ()

    def export(self, what: str, source: str) -> dict[str, Any]:
        """``what`` (one of ``exports``) from the checkpoint or run at ``source``, as plain data
        (layers as kinds and sizes, weights as arrays): the receiving kind rebuilds it and
        imports nothing of this one. A checkpoint that cannot give it: UserError."""
        raise UserError(f"{self.noun} export nothing ({what} asked from {source})")

    # The registry's ``export`` (``jobs.export``), handed to each kind it lists (``connect``):
    # how a job of this kind reads what another kind exports without importing that kind.
    _registry_export: Callable[[str, str], dict[str, Any]] | None = None

    def connect(self, export: Callable[[str, str], dict[str, Any]]) -> None:
        self._registry_export = export

    def imported(self, what: str, source: str) -> dict[str, Any]:
        """``what`` from the checkpoint or run at ``source``, as the kind that exports it gives
        it (``export``); UserError where no listed kind does."""
        if self._registry_export is None:
            raise UserError(f"{what} from {source}: no kind of job is listed to give it")
        return self._registry_export(what, source)

    # --- Tune ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def space_keys(self, job: str) -> tuple[str, set[str]]:
        """The name of the job's config class and the keys a search space may name."""

    @abc.abstractmethod
    def check_trial(self, job: str, target: str, overrides: dict[str, Any], seed: int) -> Any:
        """One trial's config, built and checked as ``train`` would (UserError)."""

    @abc.abstractmethod
    def trial_resources(
        self, job: str, target: str, fixed: dict[str, Any], config: Any, num_workers: int
    ) -> tuple[Any, dict[str, float]]:
        """(what Tune reserves for one trial, what one trial occupies in all)."""

    @abc.abstractmethod
    def asha_clock(self, limits: dict[str, Any]) -> tuple[str, int]:
        """ASHA's time attribute and its maximum for a trial with these limits."""

    @abc.abstractmethod
    def run_trial(
        self, overrides: dict[str, Any], setup: TrialSetup, run_dir: Path, trial_id: str
    ) -> None:
        """Run (or continue) one trial in ``run_dir``, reporting to Tune as it goes."""

    @abc.abstractmethod
    def finished_metrics(self, run_dir: Path) -> dict[str, Any]:
        """A finished trial's result.json as the metrics it reports to Tune."""

    def train_command(self, job: str, target: str) -> str:
        """The ``rlgen train`` line that reruns a trial's config."""
        return f"rlgen train {job} {self.target_flag} {target}"
