"""What an experiment is: a job, its env or dataset, a search space over the job's config keys,
a scheduler, and the limits of one trial. ``tune_configs/`` holds the experiments; their spaces
are built with ``tune_configs.spaces``, which checks every key against the job's config class.
A value in the space is either a Tune search domain (``tune.loguniform``, ``tune.choice``,
``tune.grid_search``, ...) or a plain value that every trial uses.

Nothing here knows which kind of job an experiment runs: the job's kind (``jobs.kind_of``)
says what its trials report, rank by and may be limited by.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import jobs
from runkit.jobkind import JobKind

SCHEDULERS = ("asha", "pbt")
SEARCHES = ("random", "optuna")


def check_keys(owner: str, allowed: set[str], keys: Any) -> None:
    """TypeError naming the first of ``keys`` not in ``allowed``, with the closest matches."""
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TypeError(f"{owner} has no setting {key!r}{hint}")


def is_domain(value: Any) -> bool:
    """A Tune search domain (sampled per trial) rather than a plain value."""
    from ray.tune.search.sample import Domain

    return isinstance(value, Domain) or (isinstance(value, dict) and "grid_search" in value)


def candidates(value: Any) -> list[Any]:
    """Values a domain can produce, to check before a search starts: every category or grid
    point, a range's two ends."""
    from ray.tune.search.sample import Categorical, Float, Integer

    if isinstance(value, dict) and "grid_search" in value:
        return list(value["grid_search"])
    if isinstance(value, Categorical):
        return list(value.categories)
    if isinstance(value, Float):
        return [value.lower, value.upper]
    if isinstance(value, Integer):
        return [value.lower, value.upper - 1]  # randint's upper end is exclusive
    if is_domain(value):
        return [value.sample()]
    return [value]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One search. ``space``: config key -> Tune domain (searched) or plain value (fixed);
    limits per trial: those of the job's kind (``max_env_steps`` / ``time_budget_s`` for RL,
    ``epochs`` for generative models); the others stay None."""

    name: str
    job: str
    target: str  # the env id (RL) or dataset (generative)
    space: dict[str, Any]
    doc: str = ""
    scheduler: str = "asha"
    num_samples: int = 8
    max_env_steps: int | None = None
    time_budget_s: float | None = None
    epochs: int | None = None
    num_workers: int = 1  # generative: Ray Train workers per trial
    seed: int = 0  # every trial's seed unless the space searches ``seed``
    perturbation_interval: int = 10  # PBT: training iterations between exploits
    grace_fraction: float = 0.25  # ASHA: no trial is stopped before this share of its budget
    checkpoint_every: int = 10  # RL: iterations between checkpoints (PBT: the interval)
    # Keys the user fixes for every trial (``--set KEY=...``), each with what it names: values
    # from their own machine (``encoder``: a VAE run of theirs) that no experiment can hold.
    needs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.job not in jobs.names():
            raise ValueError(f"experiment {self.name}: unknown job {self.job!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"experiment {self.name}: scheduler must be one of {SCHEDULERS}")
        # A trial's resources are reserved before its config is sampled: fixed, never searched.
        searched_resources = [k for k in self.kind.resource_keys if is_domain(self.space.get(k))]
        if searched_resources:
            raise ValueError(
                f"experiment {self.name}: {searched_resources[0]} sets a trial's resources and "
                "cannot be searched"
            )

    @property
    def kind(self) -> JobKind:
        return jobs.kind_of(self.job)

    @property
    def metric(self) -> str:
        return self.kind.metric

    @property
    def mode(self) -> str:
        return self.kind.mode

    @property
    def also(self) -> tuple[str, ...]:
        """Shown beside the ranking metric: how good each trial was at its end."""
        live = self.kind.live_metric
        return () if live == self.metric else (live,)

    @property
    def searched(self) -> dict[str, Any]:
        return {k: v for k, v in self.space.items() if is_domain(v)}

    @property
    def fixed(self) -> dict[str, Any]:
        return {k: v for k, v in self.space.items() if not is_domain(v)}

    def limits(self) -> dict[str, Any]:
        """The kind's per-trial limits, as set (None where not)."""
        return {name: getattr(self, name) for name in self.kind.limit_args}
