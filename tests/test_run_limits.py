"""Tier 1-2: when an RL run stops, and which of its checkpoints stay.

The limits' defaults (the env's ``reward_threshold`` as the stop reward, 1M env steps when no
limit is given) and the stop rule itself on hand-made cases; then real runs through
``rlgen.train`` on the session's Ray: a time budget with no env-step limit stops at the first
iteration past it, a run given no stop reward stops at its env's threshold (and never on reward
when the env has none), and only the newest ``KEEP_CHECKPOINTS`` checkpoints are kept."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from algorithms.checkpoints import KEEP_CHECKPOINTS
from algorithms.configure import DEFAULT_MAX_ENV_STEPS, RLRunSpec
from algorithms.run_loop import _stop_reason
from tests import threshold_envs

SOLVED_ENV = "tests.threshold_envs:Corridor20Solved-v0"  # reward_threshold 20, every game 20
NO_THRESHOLD_ENV = "tests.threshold_envs:Corridor20-v0"  # every game 20, no reward_threshold


# env, what the user gave -> (stop_reward, max_env_steps) after fill_defaults()
DEFAULTS = [
    ("CartPole-v1", {}, 475.0, DEFAULT_MAX_ENV_STEPS),
    ("CartPole-v1", {"time_budget_s": 60.0}, 475.0, None),  # the budget is the limit
    ("CartPole-v1", {"stop_reward": 100.0, "max_env_steps": 5000}, 100.0, 5000),
    ("CartPole-v1", {"stop_reward": 0.0}, 0.0, DEFAULT_MAX_ENV_STEPS),  # 0 is a given value
    ("Acrobot-v1", {}, -100.0, DEFAULT_MAX_ENV_STEPS),
    ("Pendulum-v1", {}, None, DEFAULT_MAX_ENV_STEPS),  # no threshold: never stops on reward
]


@pytest.mark.parametrize(("env", "given", "stop_reward", "max_env_steps"), DEFAULTS)
def test_fill_defaults(env, given, stop_reward, max_env_steps):
    spec = RLRunSpec(algorithm="reinforce", env=env, **given)
    spec.fill_defaults()
    assert spec.stop_reward == stop_reward
    assert spec.max_env_steps == max_env_steps
    assert spec.time_budget_s == given.get("time_budget_s")


def _state(ret: float, steps: int, wall: float) -> dict:
    return {"episode_return_mean": ret, "env_steps": steps, "wall_time_s": wall}


# limits, state -> why the run stops (None: it goes on)
STOPS = [
    ({"stop_reward": 475.0}, _state(474.9, 10, 1.0), None),
    ({"stop_reward": 475.0}, _state(475.0, 10, 1.0), "solved"),
    ({"stop_reward": None}, _state(1e9, 10, 1.0), None),  # no stop reward: never solved
    ({"stop_reward": 475.0}, _state(math.nan, 10, 1.0), None),  # no game finished yet
    ({"max_env_steps": 100}, _state(0.0, 99, 1.0), None),
    ({"max_env_steps": 100}, _state(0.0, 100, 1.0), "max_env_steps"),
    ({"time_budget_s": 5.0}, _state(0.0, 10, 4.99), None),
    ({"time_budget_s": 5.0}, _state(0.0, 10, 5.0), "time_budget"),
    # several met at once: solved first, then env steps, then time
    ({"stop_reward": 1.0, "max_env_steps": 1, "time_budget_s": 1.0}, _state(2, 2, 2), "solved"),
    ({"max_env_steps": 1, "time_budget_s": 1.0}, _state(2, 2, 2), "max_env_steps"),
]


@pytest.mark.parametrize(("limits", "state", "reason"), STOPS)
def test_stop_reason(limits, state, reason):
    spec = RLRunSpec(algorithm="reinforce", env="CartPole-v1", **limits)
    assert _stop_reason(spec, state) == reason


# --- real runs -----------------------------------------------------------------------------

BUDGET_S = 5.0
CHECKPOINT_EVERY = 2
# Ray already up: building the Algorithm and the end of the run take seconds, not minutes.
STARTUP_BOUND_S = 120.0


@pytest.fixture(scope="module")
def _runs():
    return {}


@pytest.fixture
def run(_runs, ray_local, tmp_path_factory):
    """``run(name, **kwargs)``: ``rlgen.train("reinforce", ...)`` once per module and name;
    returns (result, the reports streamed to the callback, run directory, wall seconds)."""
    import rlgen

    def go(name: str, **kwargs):
        if name not in _runs:
            reports: list = []
            out = tmp_path_factory.mktemp(name) / "run"
            t0 = time.monotonic()
            result = rlgen.train(
                "reinforce", output=out, seed=0, video_frames=0, on_report=reports.append,
                **kwargs,
            )  # fmt: skip
            _runs[name] = (result, reports, out, time.monotonic() - t0)
        return _runs[name]

    return go


def _spec(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())["spec"]


def _budget_run(run):
    return run(
        "budget", env="CartPole-v1", time_budget_s=BUDGET_S, checkpoint_every=CHECKPOINT_EVERY
    )


def test_time_budget_stops_at_the_first_iteration_past_it(run):
    result, reports, out, wall = _budget_run(run)
    assert result.stop_reason == "time_budget" and not result.solved
    times = [r.metrics["wall_time_s"] for r in reports]
    assert times[-1] >= BUDGET_S > times[-2], times  # not one iteration more than needed
    assert [r.last for r in reports] == [False] * (len(reports) - 1) + [True]
    assert result.wall_time_s == round(times[-1], 3)
    assert BUDGET_S <= wall < BUDGET_S + STARTUP_BOUND_S
    on_disk = json.loads((out / "result.json").read_text())
    assert on_disk["stop_reason"] == "time_budget" and on_disk["wall_time_s"] == result.wall_time_s
    spec = _spec(out)
    assert spec["time_budget_s"] == BUDGET_S and spec["max_env_steps"] is None


def test_default_stop_reward_is_the_envs_threshold(run):
    """Given no stop reward, a CartPole-v1 run records 475 as its stop reward in run.json."""
    result, _, out, _ = _budget_run(run)
    assert _spec(out)["stop_reward"] == 475.0
    assert result.episode_return_mean < 475.0  # and it was not reached: the budget stopped it


def test_run_stops_at_the_envs_threshold(run):
    """A run given no stop reward stops on its env's reward_threshold: every Corridor game
    returns 20, its threshold, so the first batch of games solves it."""
    result, reports, out, _ = run("solved", env=SOLVED_ENV, max_env_steps=10_000)
    assert _spec(out)["stop_reward"] == threshold_envs.THRESHOLD
    assert result.stop_reason == "solved" and result.solved
    assert [r.iteration for r in reports] == [1]
    assert result.episode_return_mean == threshold_envs.THRESHOLD
    assert json.loads((out / "result.json").read_text())["solved"] is True


def test_env_without_threshold_never_stops_on_reward(run):
    """The same games from an env with no reward_threshold: no stop reward is recorded, and
    the run goes on to its env-step limit."""
    steps = 3 * 8 * threshold_envs.LENGTH  # three batches of REINFORCE's 8 games
    result, reports, out, _ = run("no_threshold", env=NO_THRESHOLD_ENV, max_env_steps=steps)
    assert _spec(out)["stop_reward"] is None
    assert result.stop_reason == "max_env_steps" and not result.solved
    assert result.episode_return_mean == threshold_envs.LENGTH  # which any threshold of 20 solves
    assert len(reports) == 3 and result.env_steps == steps


def test_newest_checkpoints_are_kept(run):
    """One checkpoint every CHECKPOINT_EVERY iterations and one at the end; of those, exactly
    the newest KEEP_CHECKPOINTS remain (nothing else in checkpoints/), the result's the newest."""
    result, reports, out, _ = _budget_run(run)
    for r in reports:
        assert (r.checkpoint is not None) == (r.iteration % CHECKPOINT_EVERY == 0 or r.last), r
    written = [Path(r.checkpoint).name for r in reports if r.checkpoint is not None]
    assert len(written) > KEEP_CHECKPOINTS, f"too short a run to test retention: {written}"
    assert written == [f"iter_{r.iteration:06d}" for r in reports if r.checkpoint is not None]
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == written[-KEEP_CHECKPOINTS:]
    assert Path(result.checkpoint).name == written[-1]
