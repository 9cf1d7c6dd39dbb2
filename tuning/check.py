"""An experiment as the caller changed it, checked before anything is written: the sample
count, the limits (only the job kind's own), the keys a search space names and every value
each domain can produce, through the job kind's own config checks (UserError)."""

from __future__ import annotations

import dataclasses
from typing import Any

from runkit.errors import UserError
from tuning.experiment import Experiment, candidates, check_keys, is_domain

# Trials of one experiment (and trials at once): a bound, so that a typo cannot queue 10**9.
MAX_TRIALS = 10_000


def count_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TRIALS


def customize(
    exp: Experiment,
    *,
    num_samples: int | None,
    max_env_steps: int | None,
    time_budget_s: float | None,
    epochs: int | None,
    dataset: str | None,
    overrides: dict[str, Any] | None,
    space: dict[str, Any] | None,
    seed: int | None,
) -> Experiment:
    """The experiment with the caller's changes, each checked (UserError)."""
    if num_samples is not None and not count_ok(num_samples):
        raise UserError(f"--num-samples {num_samples}: must be from 1 to {MAX_TRIALS:,}")
    limits = {"max_env_steps": max_env_steps, "time_budget_s": time_budget_s, "epochs": epochs}
    foreign: dict[str, Any] = {
        f"--{k.replace('_', '-')}": v for k, v in limits.items() if k not in exp.limits()
    }
    if dataset is not None and exp.kind.target_arg != "dataset":
        foreign["--dataset"] = dataset
    for flag, value in foreign.items():
        if value is not None:
            raise UserError(f"tune {exp.name}: {flag} is not a setting of a {exp.job} trial")
    for name, value in limits.items():
        if value is not None and (isinstance(value, bool) or value <= 0):
            raise UserError(f"--{name.replace('_', '-')} {value}: must be positive")
    merged = {**exp.space, **(overrides or {}), **(space or {})}
    for key, what in exp.needs:
        if merged.get(key) is None:
            raise UserError(f"tune {exp.name}: give --set {key}=... ({what})")
    changes: dict[str, Any] = {"space": merged}
    if num_samples is not None:
        changes["num_samples"] = num_samples
    if seed is not None:
        changes["seed"] = seed
    if dataset is not None:
        changes["target"] = dataset
    given = {k: limits[k] for k in exp.limits()}
    if any(v is not None for v in given.values()):  # a new limit replaces the experiment's
        changes.update(given)
    try:
        return dataclasses.replace(exp, **changes)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_values(exp: Experiment) -> Any:
    """Every value each domain can produce, through the job's own config checks; returns the
    config of the first candidates (RL: to size the trial's resources)."""
    first = {k: candidates(v)[0] for k, v in exp.space.items()}
    built = _build(exp, first)
    for key, value in exp.space.items():
        for candidate in candidates(value)[1:] if is_domain(value) else []:
            _build(exp, {**first, key: candidate})
    return built


def _build(exp: Experiment, overrides: dict[str, Any]) -> Any:
    return exp.kind.check_trial(exp.job, exp.target, overrides, exp.seed)


def check_space_keys(exp: Experiment, keys: list[str]) -> None:
    """A key the caller added must be one of the job's config keys (UserError)."""
    try:
        check_keys(*exp.kind.space_keys(exp.job), keys)
    except TypeError as exc:
        raise UserError(f"tune {exp.name}: {exc}") from None
