"""Tier 2: the REINFORCE algorithm on a real local Ray cluster: sampling with 0 and 2 rollout
actors, several Learners, discrete and Box actions, checkpoint round trip."""

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from algorithms.reinforce.algorithm import ReinforceConfig


def _config(env="CartPole-v1", **training):
    return (
        ReinforceConfig()
        .environment(env)
        .training(**training)
        .debugging(seed=0)
        .fault_tolerance(delay_between_env_runner_restarts_s=0)
    )


@pytest.mark.parametrize("num_env_runners,episodes", [(0, 4), (2, 5)])
def test_one_iteration_samples_every_requested_episode(ray_local, num_env_runners, episodes):
    algo = (
        _config(episodes_per_batch=episodes)
        .env_runners(num_env_runners=num_env_runners)
        .build_algo()
    )
    try:
        result = algo.train()
        runners = result["env_runners"]
        # 5 episodes over 2 actors is split 3 + 2: none lost, none extra.
        assert runners["num_episodes"] == episodes
        assert runners["num_env_steps_sampled"] > 0
        assert np.isfinite(result["learners"]["default_policy"]["policy_loss"])
        assert result["learners"]["default_policy"]["value_loss"] > 0  # value baseline trained
    finally:
        algo.stop()


def test_vectorized_envs_per_actor(ray_local):
    config = _config(episodes_per_batch=6).env_runners(num_env_runners=2, num_envs_per_env_runner=2)
    algo = config.build_algo()
    try:
        assert algo.train()["env_runners"]["num_episodes"] == 6
    finally:
        algo.stop()


def test_moving_average_baseline_is_the_same_on_every_learner(ray_local):
    config = _config(baseline="moving_average", episodes_per_batch=4).learners(
        num_learners=2, num_cpus_per_learner=0.5
    )
    algo = config.build_algo()
    try:
        seen = []
        for _ in range(3):
            before = algo.moving_average_baseline
            algo.train()
            seen.append(
                algo.learner_group.foreach_learner(lambda learner: learner.moving_average_baseline)
            )
            # Each Learner subtracted the b known before this batch, and all the same one.
            values = [call.get() for call in seen[-1]]
            assert len(values) == 2 and values[0] == values[1]
            assert values[0] == pytest.approx(0.0 if before is None else before)
        assert algo.moving_average_baseline > 0  # CartPole returns are positive
    finally:
        algo.stop()


@pytest.mark.parametrize("env", ["Pendulum-v1", "Acrobot-v1"])
def test_other_envs_discrete_and_box(ray_local, env):
    algo = _config(env, episodes_per_batch=2).build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_episodes"] == 2
        assert np.isfinite(result["learners"]["default_policy"]["policy_loss"])
        module = algo.get_module(DEFAULT_MODULE_ID)
        if env == "Pendulum-v1":  # Gaussian policy: [mean, log_std] per action dimension
            out = module.forward_inference({"obs": torch.zeros(1, 3)})
            assert out["action_dist_inputs"].shape == (1, 2)
    finally:
        algo.stop()


def test_checkpoint_round_trip(ray_local, tmp_path):
    config = _config(baseline="moving_average", episodes_per_batch=4)
    algo = config.build_algo()
    try:
        algo.train()
        algo.train()
        steps = algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"))
        weights = algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
        baseline = algo.moving_average_baseline
        algo.save_to_path(str(tmp_path))
    finally:
        algo.stop()
    restored = config.build_algo()
    try:
        restored.restore_from_path(str(tmp_path))
        again = restored.learner_group.get_weights()[DEFAULT_MODULE_ID]
        assert again.keys() == weights.keys()
        for key in weights:
            np.testing.assert_array_equal(np.asarray(again[key]), np.asarray(weights[key]))
        assert restored.moving_average_baseline == baseline
        assert restored.training_iteration == 2
        result = restored.train()
        # Counters continue from the checkpoint instead of restarting at zero.
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] > steps
        assert restored.training_iteration == 3
    finally:
        restored.stop()
