"""Faults injected into real RL runs: rollout actors whose env raises or whose process is
killed (during sampling and between iterations), and a NaN reward. Each run must go on, restart
the actor, keep its counters rising and never count a cut-short game as a finished one. The env
is ``tests.fault_envs:Corridor-v0``: every finished game returns exactly 20, so a partial game
in the game window would pull the mean below 20.

Killed drivers and Train workers are in ``test_faults_kills.py``; non-finite values and full
disks in ``test_faults_values.py``.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import tempfile
import time
from pathlib import Path

import pytest

from tests import fault_envs as fe
from tests.faultkit import ENV, RL_FAST, alive, tensorboard_values

# Rollout actors are processes of the test session's Ray instance, which took this process's
# environment when it started: so the variable naming the envs' fault directory is set here, at
# import (before any test starts Ray), to a link private to this pytest process (two suites at
# once never share it), and the ``fault_dir`` fixture points the link at each test's own
# directory. An env resolves the link when made, so an actor of one test never reads or writes
# another test's directory. A CLI run gets the variable naming its directory for that run only.
_FAULT_LINK = Path(tempfile.gettempdir()) / f"rlgen-faults-{os.getpid()}-{secrets.token_hex(8)}"
os.environ[fe.FAULT_DIR_ENV] = str(_FAULT_LINK)


@pytest.fixture
def fault_dir(tmp_path):
    faults = tmp_path / "faults"
    faults.mkdir()
    _FAULT_LINK.symlink_to(faults, target_is_directory=True)  # fails if the name is taken
    try:
        yield faults
    finally:
        _FAULT_LINK.unlink()


def _runner_pids(fault_dir: Path) -> set[int]:
    """Processes other than this one that made a Corridor env (rollout actors)."""
    pids = {int(p.name.split("-")[1]) for p in fault_dir.glob("pid-*")}
    return pids - {os.getpid()}


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_rollout_actor_failures_are_survived(algorithm, fault_dir, ray_local, tmp_path):
    """Three faults in one run with 2 rollout actors: an env raises mid-game, an actor process
    is SIGKILLed mid-game (during sampling), and one is SIGKILLed between iterations. Each time
    a new actor process takes over, the run goes on to its stop, env steps only rise, and the
    game window holds full games only."""
    import rlgen

    phase = {"n": 0, "after": 0}
    steps: list[int] = []

    def on_report(report) -> bool:
        steps.append(report.step)
        pids = _runner_pids(fault_dir)
        if phase["n"] == 0 and report.iteration >= 2:
            fe.arm(fault_dir, "raise", 10)
            phase["n"] = 1
        elif phase["n"] == 1 and len(pids) >= 3:  # the failed actor was replaced
            fe.arm(fault_dir, "kill", 10)
            phase["n"] = 2
        elif phase["n"] == 2 and len(pids) >= 4:
            victim = max(pid for pid in pids if alive(pid))
            os.kill(victim, signal.SIGKILL)
            phase["n"] = 3
        elif phase["n"] == 3 and len(pids) >= 5:
            phase["n"] = 4
        elif phase["n"] == 4:
            phase["after"] += 1
            return phase["after"] >= 3  # a few rounds with the last replacement in service
        return False

    result = rlgen.train(
        algorithm,
        env=ENV,
        output=tmp_path / "run",
        num_env_runners=2,
        seed=0,
        time_budget_s=240,
        stop_reward=1e9,
        video_frames=0,
        overrides={**RL_FAST[algorithm], "delay_between_env_runner_restarts_s": 0.0},
        on_report=on_report,
    )
    assert phase["n"] == 4 and result.stop_reason == "callback", (phase, result.stop_reason)
    assert sorted(n.split("-", 2)[2] for n in fe.claimed(fault_dir)) == ["kill-10.0", "raise-10.0"]
    assert len(_runner_pids(fault_dir)) == 5  # 2 actors + 3 replacements
    assert all(b > a for a, b in zip(steps[:-1], steps[1:], strict=True)), steps
    # Every game in the window is a full one (exactly 20), none of the 3 cut-short ones.
    assert result.episode_return_mean == 20.0
    assert math.isfinite(result.best_episode_return_mean)
    if algorithm == "reinforce":
        # Healthy actors make up a failed one's share: every batch is 4 whole 20-step games.
        assert {b - a for a, b in zip(steps[:-1], steps[1:], strict=True)} == {80}, steps


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_a_round_whose_every_actor_died_waits_for_a_replacement(
    algorithm, fault_dir, ray_local, tmp_path
):
    """The only rollout actor is SIGKILLed mid-sample: nothing comes back from that call, and
    the round samples again from its replacement instead of ending without env steps (every
    report shows more env steps than the last)."""
    import rlgen

    steps: list[int] = []
    phase = {"armed": False, "after": 0}

    def on_report(report) -> bool:
        steps.append(report.step)
        if not phase["armed"] and report.iteration >= 2:
            fe.arm(fault_dir, "kill", 10)
            phase["armed"] = True
        elif phase["armed"] and len(_runner_pids(fault_dir)) >= 2:
            phase["after"] += 1
            return phase["after"] >= 3
        return False

    result = rlgen.train(
        algorithm,
        env=ENV,
        output=tmp_path / "run",
        num_env_runners=1,
        seed=0,
        time_budget_s=180,
        stop_reward=1e9,
        video_frames=0,
        overrides={**RL_FAST[algorithm], "delay_between_env_runner_restarts_s": 0.0},
        on_report=on_report,
    )
    assert result.stop_reason == "callback", (phase, result.stop_reason)
    assert [n.split("-", 2)[2] for n in fe.claimed(fault_dir)] == ["kill-10.0"]
    assert all(b > a for a, b in zip(steps[:-1], steps[1:], strict=True)), steps


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_a_round_gives_up_after_the_tolerated_number_of_failed_calls(
    algorithm, fault_dir, ray_local
):
    """Every replacement actor dies too: the round samples again only as often as
    ``num_consecutive_env_runner_failures_tolerance`` allows (2 here: exactly two actors die;
    one env per actor, so each claims one armed fault), then the training step raises one
    clear error instead of looping forever."""
    from algorithms.configure import RLRunSpec, build_config
    from envs import permit_env_module

    permit_env_module(ENV)  # named here, as a command or rlgen.train names it
    spec = RLRunSpec(
        algorithm=algorithm, env=ENV, num_env_runners=1, num_envs_per_env_runner=1, seed=0,
        overrides={
            **RL_FAST[algorithm],
            "delay_between_env_runner_restarts_s": 0.0,
            "num_consecutive_env_runner_failures_tolerance": 2,
        },
    )  # fmt: skip
    spec.fill_defaults()
    algo = build_config(spec).build_algo()
    try:
        algo.train()
        fe.arm(fault_dir, "kill", 3, count=10)
        with pytest.raises(RuntimeError, match="sample call failed, 2 times in a row"):
            for _ in range(5):
                algo.train()
        assert len(fe.claimed(fault_dir)) == 2
    finally:
        algo.stop()


def test_restarted_actor_gets_the_learners_current_weights(fault_dir, ray_local):
    """After an actor's env raised and Ray restarted the process, RLlib's restore (run before
    every training step) gives it the Learner's weights of now, not its initial ones."""
    import numpy as np

    from algorithms.configure import RLRunSpec, build_config
    from envs import permit_env_module

    permit_env_module(ENV)  # named here, as a command or rlgen.train names it
    spec = RLRunSpec(
        algorithm="reinforce", env=ENV, num_env_runners=2, seed=0,
        overrides={**RL_FAST["reinforce"], "delay_between_env_runner_restarts_s": 0.0},
    )  # fmt: skip
    spec.fill_defaults()
    algo = build_config(spec).build_algo()
    try:
        initial = algo.learner_group.get_weights(module_ids=["default_policy"])["default_policy"]
        algo.train()
        fe.arm(fault_dir, "raise", 10)
        algo.train()  # one actor fails in this round
        assert len(fe.claimed(fault_dir)) == 1
        restored: list[int] = []
        deadline = time.monotonic() + 120
        while not restored and time.monotonic() < deadline:
            time.sleep(0.5)
            restored = algo.restore_env_runners(algo.env_runner_group)
        assert len(restored) == 1
        learner = algo.learner_group.get_weights(module_ids=["default_policy"])["default_policy"]
        [runner] = algo.env_runner_group.foreach_env_runner(
            lambda r: r.module.get_state(), local_env_runner=False, remote_worker_ids=restored
        )
        assert set(runner) and set(runner) <= set(learner)
        for key, value in runner.items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(learner[key]), key)
        # ... and those are not the weights every actor starts with (two updates were made).
        assert any(not np.array_equal(initial[k], np.asarray(v)) for k, v in runner.items())
    finally:
        algo.stop()


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "dqn"])
def test_a_nan_reward_skips_updates_and_the_run_goes_on(algorithm, fault_dir, ray_local, tmp_path):
    """One game with a NaN reward: the updates it poisons are skipped and counted in
    TensorBoard, and the run reaches its step limit with finite weights."""
    import rlgen

    def on_report(report) -> bool:
        if report.iteration == 2:
            fe.arm(fault_dir, "nan", 5)
        return False

    out = tmp_path / "run"
    result = rlgen.train(
        algorithm, env=ENV, output=out, seed=0, max_env_steps=1200, stop_reward=1e9,
        video_frames=0, overrides=RL_FAST[algorithm], on_report=on_report,
    )  # fmt: skip
    assert result.stop_reason == "max_env_steps"
    assert len(fe.claimed(fault_dir)) == 1
    skipped = tensorboard_values(out / "tensorboard", "learner/nonfinite_updates_skipped")
    assert max(skipped) >= 1
    import torch

    weights = torch.load(Path(result.checkpoint) / "policy_weights.pt", weights_only=True)
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())
    assert rlgen.evaluate(result.checkpoint, episodes=1).greedy_return_mean == 20.0
