"""Tier 3: REINFORCE, DQN, A2C and PPO learn CartPole-v1, run through the ``rlgen train`` CLI as
a user would."""

import importlib
import json

import pytest

from algorithms.reinforce.expected import CARTPOLE_VALUE_BASELINE_MAX_ENV_STEPS
from envs.ids import CARTPOLE_SOLVED_RETURN
from tests.conftest import run_cli

pytestmark = pytest.mark.learning


def test_value_baseline_solves_cartpole_within_budget(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "reinforce",
        "--env",
        "CartPole-v1",
        "--set",
        "baseline=value",
        "--stop-reward",
        str(CARTPOLE_SOLVED_RETURN),
        "--max-env-steps",
        str(CARTPOLE_VALUE_BASELINE_MAX_ENV_STEPS),
        "--seed",
        "0",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["solved"] is True, result
    assert result["episode_return_mean"] >= CARTPOLE_SOLVED_RETURN
    assert result["env_steps"] <= CARTPOLE_VALUE_BASELINE_MAX_ENV_STEPS
    # The greedy policy of the final checkpoint plays (near) full-length episodes too.
    ev = run_cli("eval", result["checkpoint"], "--episodes", "5")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["greedy_return_mean"] >= 400


def test_dqn_solves_cartpole_within_budget(tmp_path):
    from algorithms.dqn.expected import CARTPOLE_MAX_ENV_STEPS

    out = tmp_path / "dqn"
    proc = run_cli(
        "train", "dqn", "--env", "CartPole-v1",
        "--stop-reward", str(CARTPOLE_SOLVED_RETURN),
        "--max-env-steps", str(CARTPOLE_MAX_ENV_STEPS),
        "--seed", "0", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["solved"] is True, result
    assert result["env_steps"] <= CARTPOLE_MAX_ENV_STEPS
    ev = run_cli("eval", result["checkpoint"], "--episodes", "3")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["greedy_return_mean"] >= 400


@pytest.mark.parametrize("algorithm", ["a2c", "ppo"])
def test_actor_critic_solves_cartpole_within_budget(tmp_path, algorithm):
    """A2C and PPO with their defaults, each on its fixed seed, within its budget."""
    expected = importlib.import_module(f"algorithms.{algorithm}.expected")
    out = tmp_path / algorithm
    proc = run_cli(
        "train", algorithm, "--env", "CartPole-v1",
        "--stop-reward", str(CARTPOLE_SOLVED_RETURN),
        "--max-env-steps", str(expected.CARTPOLE_MAX_ENV_STEPS),
        "--seed", str(expected.LEARNING_TEST_SEED), "--video-frames", "0", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["solved"] is True, result
    assert result["episode_return_mean"] >= CARTPOLE_SOLVED_RETURN
    assert result["env_steps"] <= expected.CARTPOLE_MAX_ENV_STEPS
    ev = run_cli("eval", result["checkpoint"], "--episodes", "3")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["greedy_return_mean"] >= 400
