"""What an experiment is: a job, its env or dataset, a search space written against the job's
own config class, a scheduler, and the limits of one trial.

``rl_space`` and ``gen_space`` are the typed builders: every key is checked against the config
class when the experiment module is imported (an RLlib ``AlgorithmConfig`` subclass's settable
keys, a generative job's config dataclass fields), so a misspelled key fails at import instead
of being ignored an hour into a search. A value in the space is either a Tune search domain
(``tune.loguniform``, ``tune.choice``, ``tune.grid_search``, ...) or a plain value that every
trial uses.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

RL_JOBS = ("reinforce", "a2c", "dqn")
GENERATIVE_JOBS = ("vae", "pixelcnn")
SCHEDULERS = ("asha", "pbt")
SEARCHES = ("random", "optuna")

# What a trial is ranked by: the run loop's last-100-game mean return (RL; the x-axis is env
# steps), the test NLL in nats (generative; one report per epoch).
RL_METRIC, RL_MODE, RL_TIME = "episode_return_mean", "max", "env_steps"
GEN_METRIC, GEN_MODE, GEN_TIME = "test_nll_nats", "min", "epoch"

# Settings that decide a trial's resources are fixed per experiment, never searched: the
# trial's CPUs are reserved before its config is sampled.
RESOURCE_KEYS = (
    "num_env_runners", "num_cpus_per_env_runner", "num_gpus_per_env_runner", "num_learners",
    "num_cpus_per_learner", "num_gpus_per_learner", "num_cpus_for_main_process",
)  # fmt: skip


def _check_keys(owner: str, keys: Any, allowed: set[str]) -> None:
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise TypeError(f"{owner} has no setting {key!r}{hint}")


def rl_space(config_class: type, **space: Any) -> dict[str, Any]:
    """A search space over an RLlib config class (``ReinforceConfig``, ``A2CConfig``,
    ``DQNConfig``); an unknown key raises TypeError, as the config's fluent setters do."""
    from algorithms.configure import settable_keys

    _check_keys(config_class.__name__, space, settable_keys(config_class()))
    return dict(space)


def gen_space(config_class: type, **space: Any) -> dict[str, Any]:
    """A search space over a generative job's config dataclass (``VAEConfig``,
    ``PixelCNNConfig``); an unknown key raises TypeError."""
    _check_keys(config_class.__name__, space, {f.name for f in dataclasses.fields(config_class)})
    return dict(space)


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
    limits per trial: ``max_env_steps`` / ``time_budget_s`` (RL), ``epochs`` (generative)."""

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

    def __post_init__(self) -> None:
        if self.job not in RL_JOBS + GENERATIVE_JOBS:
            raise ValueError(f"experiment {self.name}: unknown job {self.job!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"experiment {self.name}: scheduler must be one of {SCHEDULERS}")
        searched_resources = [k for k in RESOURCE_KEYS if is_domain(self.space.get(k))]
        if searched_resources:
            raise ValueError(
                f"experiment {self.name}: {searched_resources[0]} sets a trial's resources and "
                "cannot be searched"
            )

    @property
    def is_rl(self) -> bool:
        return self.job in RL_JOBS

    @property
    def metric(self) -> str:
        return RL_METRIC if self.is_rl else GEN_METRIC

    @property
    def mode(self) -> str:
        return RL_MODE if self.is_rl else GEN_MODE

    @property
    def searched(self) -> dict[str, Any]:
        return {k: v for k, v in self.space.items() if is_domain(v)}

    @property
    def fixed(self) -> dict[str, Any]:
        return {k: v for k, v in self.space.items() if not is_domain(v)}

    def limits(self) -> dict[str, Any]:
        if self.is_rl:
            return {"max_env_steps": self.max_env_steps, "time_budget_s": self.time_budget_s}
        return {"epochs": self.epochs}
