"""Tier 2: ``rlgen eval`` on a Box-action (Gaussian) policy and an Atari (CNN) policy, each from
a tiny run on the session's Ray: the episodes run on the env the checkpoint stores (Atari: its
frame stack, raw full games), actions fit the env's space, returns are finite, and the same
seed gives the same figures (in this process, again, and from the command line)."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

from runkit.results import to_dict
from tests.conftest import run_cli

BOX_ENV = "Pendulum-v1"  # obs (3,), action Box(-2, 2, (1,)), 200 steps a game
ATARI_ENV = "ALE/Pong-v5"  # no lives, no FIRE to serve: an untrained policy's game ends
FRAME_STACK = 2  # not the preset's default (4): eval must take it from the checkpoint


@pytest.fixture(scope="module")
def _runs():
    return {}


@pytest.fixture
def trained(_runs, ray_local, tmp_path_factory):
    """``trained(name, job, **kwargs)``: the run directory of ``rlgen.train(job, ...)``, run
    once per module and name."""
    import rlgen

    def go(name: str, job: str, **kwargs):
        if name not in _runs:
            out = tmp_path_factory.mktemp(name) / "run"
            result = rlgen.train(job, output=out, seed=0, video_frames=0, **kwargs)
            assert result.checkpoint is not None
            _runs[name] = out
        return _runs[name]

    return go


def _box_run(trained):
    return trained(
        "box", "reinforce", env=BOX_ENV, max_env_steps=200, overrides={"episodes_per_batch": 1}
    )


def _atari_run(trained):
    # One A2C iteration of 2 envs x 5 steps with the stack of 2 frames.
    return trained(
        "atari", "a2c", env=ATARI_ENV, max_env_steps=10,
        overrides={
            "frame_stack": FRAME_STACK, "num_envs_per_env_runner": 2,
            "rollout_fragment_length": 5, "min_sample_timesteps_per_iteration": 10,
        },
    )  # fmt: skip


class _Recorder(gym.Wrapper):
    """Every observation and action of the env, each game's rewards and how it ended."""

    def __init__(self, env: gym.Env, log: dict) -> None:
        super().__init__(env)
        self.log = log

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.log["obs"].append(np.asarray(obs))
        self.log["rewards"].append([])
        self.log["ends"].append(None)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.log["obs"].append(np.asarray(obs))
        self.log["actions"].append(action)
        self.log["rewards"][-1].append(float(reward))
        if terminated or truncated:
            self.log["ends"][-1] = "terminated" if terminated else "truncated"
        return obs, reward, terminated, truncated, info


@pytest.fixture
def recorded(monkeypatch):
    """Every env that evaluation makes through ``envs.make_env``: its options, observations,
    actions, and each game's rewards and end."""
    import envs

    log: dict = {"configs": [], "obs": [], "actions": [], "rewards": [], "ends": []}
    make = envs.make_env

    def recording(env_config):
        log["configs"].append(dict(env_config))
        return _Recorder(make(env_config), log)

    monkeypatch.setattr(envs, "make_env", recording)
    return log


def _finite(result) -> None:
    for key in ("greedy_return_mean", "greedy_return_std", "sampling_return_mean"):
        assert math.isfinite(getattr(result, key)), result
    assert math.isfinite(result.sampling_return_std), result


def test_box_policy_eval(trained, recorded):
    import rlgen

    run_dir = _box_run(trained)
    result = rlgen.evaluate(run_dir, episodes=2, seed=7)
    assert (result.env, result.algorithm, result.episodes) == (BOX_ENV, "reinforce", 2)
    _finite(result)
    games = [sum(r) for r in recorded["rewards"]]
    assert len(games) == 4 and recorded["ends"] == ["truncated"] * 4  # 2 greedy, 2 sampling
    assert all(-16.3 * 200 <= g <= 0 for g in games)  # Pendulum's reward range
    assert result.greedy_return_mean == pytest.approx(np.mean(games[:2]))
    assert result.sampling_return_mean == pytest.approx(np.mean(games[2:]))
    assert all(o.shape == (3,) and o.dtype == np.float32 for o in recorded["obs"])
    actions = np.stack(recorded["actions"])
    assert actions.shape == (4 * 200, 1) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 2.0)  # unsquashed into the env's [-2, 2]
    assert np.unique(actions).size > 100  # a continuous policy, not a fixed action


def test_box_policy_eval_is_seeded(trained, tmp_path):
    """The same seed gives the same greedy and sampling figures, in this process twice (from
    other torch random states) and from ``rlgen eval`` in a fresh one; another seed gives other
    games."""
    import torch

    import rlgen

    run_dir = _box_run(trained)
    torch.manual_seed(1)
    first = to_dict(rlgen.evaluate(run_dir, episodes=2, seed=7))
    torch.manual_seed(2)  # whatever the caller's random state, the seed decides
    assert to_dict(rlgen.evaluate(run_dir, episodes=2, seed=7)) == first
    proc = run_cli("eval", str(run_dir), "--episodes", "2", "--seed", "7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == first
    other = to_dict(rlgen.evaluate(run_dir, episodes=2, seed=8))
    assert other["greedy_return_mean"] != first["greedy_return_mean"]
    assert other["sampling_return_mean"] != first["sampling_return_mean"]


def test_atari_policy_eval_uses_the_stored_preset_and_is_seeded(trained, recorded):
    import rlgen

    run_dir = _atari_run(trained)
    result = rlgen.evaluate(run_dir, episodes=1, seed=0)
    assert (result.env, result.algorithm, result.episodes) == (ATARI_ENV, "a2c", 1)
    _finite(result)
    played = [c for c in recorded["configs"] if c.get("training") is False]
    assert len(played) == 2  # one env per mode
    assert all(c["env_id"] == ATARI_ENV and c["frame_stack"] == FRAME_STACK for c in played)
    assert all(o.shape == (FRAME_STACK, 84, 84) and o.dtype == np.uint8 for o in recorded["obs"])
    assert all(isinstance(a, int) and 0 <= a < 6 for a in recorded["actions"])  # Pong's 6
    # Whole games with raw rewards: each ended on its own when one side had 21 points.
    assert recorded["ends"] == ["terminated"] * 2
    for rewards in recorded["rewards"]:
        assert set(rewards) <= {-1.0, 0.0, 1.0}
        assert max(rewards.count(1.0), rewards.count(-1.0)) == 21
    games = [sum(r) for r in recorded["rewards"]]
    assert [result.greedy_return_mean, result.sampling_return_mean] == games

    # The same seed again: the same games, observation by observation.
    first = {k: list(v) for k, v in recorded.items()}
    again = rlgen.evaluate(run_dir, episodes=1, seed=0)
    assert to_dict(again) == to_dict(result)
    assert recorded["actions"][len(first["actions"]) :] == first["actions"]
    obs = recorded["obs"][len(first["obs"]) :]
    assert len(obs) == len(first["obs"])
    assert all(np.array_equal(a, b) for a, b in zip(obs, first["obs"], strict=True))
