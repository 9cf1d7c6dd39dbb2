"""Tier 1: the job-kind registry and what every kind promises the API, the command line and
Tune; the RL kind's ranking curve, computed by hand."""

from __future__ import annotations

import inspect
import math

import pytest

import jobs
import rlgen
import rlgen_cli
from algorithms import ALGORITHMS
from algorithms.jobkind import ReturnCurve
from generative import MODELS
from runkit.errors import UserError
from runkit.jobkind import JobKind
from runkit.results import Report


def test_every_job_has_exactly_one_kind():
    assert sorted(jobs.names()) == sorted([*ALGORITHMS, *MODELS])
    for job in jobs.names():
        assert sum(job in kind.jobs() for kind in jobs.KINDS) == 1
    assert jobs.kind_of("dqn").noun == "RL jobs"
    assert jobs.kind_of("vae").noun == "generative models"


def test_an_unknown_job_is_refused_with_the_known_ones():
    with pytest.raises(UserError, match="train ppo2: unknown algorithm or model; one of a2c, "):
        jobs.kind_of("ppo2")


@pytest.mark.parametrize("kind", jobs.KINDS, ids=lambda k: type(k).__name__)
def test_a_kind_describes_what_the_api_and_the_cli_take(kind):
    """Its arguments are ``rlgen.train``'s and ``rlgen train``'s; its target is one of them;
    its limits are ``rlgen.tune``'s; every abstract method is implemented."""
    assert isinstance(kind, JobKind) and not getattr(type(kind), "__abstractmethods__", None)
    api = set(inspect.signature(rlgen.train).parameters)
    assert set(kind.own_args) <= api and kind.target_arg in kind.own_args
    assert set(kind.limit_args) <= set(inspect.signature(rlgen.tune).parameters)
    train = rlgen_cli.build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest for a in train._actions}
    assert set(kind.own_args) <= flags
    assert kind.target_flag == f"--{kind.target_arg}"
    assert kind.mode in ("max", "min")


def test_return_curve_by_hand():
    """Reports at 100 (no game finished yet), 200 (return 10) and 400 env steps (20); a budget
    of 1,000: each return holds until the next report, the last one to the budget.
    Area = 0 * 100 + 0 * 100 + 10 * 200 + 20 * 600 = 14,000 -> 14.0 over the budget."""
    curve = ReturnCurve(budget=1000)
    assert curve.add(100, math.nan) == 0.0
    assert curve.add(200, 10.0) == 0.0
    assert curve.add(400, 20.0) == pytest.approx(2000 / 400)
    assert curve.final() == pytest.approx(14.0)


def _final(solved_at: int, budget: int) -> float:
    curve = ReturnCurve(budget=budget)
    last = Report(job="dqn", iteration=1, step=solved_at, checkpoint=None, last=True,
                  metrics={"env_steps": solved_at, "episode_return_mean": 475.0})  # fmt: skip
    return curve.final_after(last)


def test_of_two_runs_that_solve_the_faster_one_scores_higher():
    """Both end at the stop reward; the one there in fewer env steps has more area."""
    assert _final(100_000, 300_000) == pytest.approx(475 * 200 / 300)
    assert _final(150_000, 300_000) == pytest.approx(475 * 150 / 300)
    assert _final(100_000, 300_000) > _final(150_000, 300_000)


def test_without_a_step_budget_the_curve_ends_where_the_run_did():
    curve = ReturnCurve(budget=None)
    curve.add(100, 5.0)
    curve.add(300, 7.0)
    assert curve.final() == pytest.approx(5.0 * 200 / 300)
