"""Tier 2: A2C on a real local Ray cluster: synchronous rounds with 0 and with 2 rollout actors
of 4 envs each, a Gaussian policy, the Atari preset on a real ROM with the Nature CNN, and a
checkpoint round trip; the
rollout actors' forward against the Learner's."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from algorithms import rllib_compat
from algorithms.a2c.algorithm import A2CConfig
from envs import rllib_env_name


def _config(env="CartPole-v1", *, runners=0, envs=4, steps=8, **training):
    return (
        A2CConfig()
        .environment(rllib_env_name(env))
        .env_runners(
            num_env_runners=runners, num_envs_per_env_runner=envs, rollout_fragment_length=steps
        )
        .training(**training)
        .reporting(min_sample_timesteps_per_iteration=0)  # one round per iteration
        .debugging(seed=0)
    )


def _round_size_ok(new_steps: int, *, actors: int, envs: int, steps: int) -> bool:
    """RLlib's ``sample(num_timesteps=M*T)`` returns M*T to M*T + M-1 env steps: a sub-env's
    reset after its episode ended takes one vector step that is not an env step."""
    return actors * envs * steps <= new_steps <= actors * (envs * steps + envs - 1)


def _runner_weights(algo):
    group = algo.env_runner_group
    if group.num_remote_workers() == 0:
        return [algo.env_runner.module.state_dict()]
    return group.foreach_env_runner(lambda r: r.module.state_dict(), local_env_runner=False)


@pytest.mark.parametrize("runners", [0, 2])
def test_round_samples_n_actors_x_m_envs_x_t_steps_and_broadcasts(ray_local, runners):
    algo = _config(runners=runners).build_algo()
    try:
        learner_before = algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
        sampled = 0
        for _ in range(3):
            result = algo.train()
            before, sampled = sampled, result["env_runners"]["num_env_steps_sampled_lifetime"]
            # One round: N actors x M envs x T steps.
            assert _round_size_ok(sampled - before, actors=max(1, runners), envs=4, steps=8)
            learner = result["learners"][DEFAULT_MODULE_ID]
            assert np.isfinite(learner["policy_loss"]) and np.isfinite(learner["value_loss"])
        weights = algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
        assert any(
            not np.array_equal(np.asarray(weights[k]), np.asarray(learner_before[k]))
            for k in weights
        )
        # Every actor holds the Learner's current policy (inference-only: no value head).
        copies = _runner_weights(algo)
        assert len(copies) == max(1, runners)
        for copy in copies:
            assert copy.keys() and not any(k.startswith("vf_") for k in copy)
            for key, value in copy.items():
                np.testing.assert_array_equal(np.asarray(value), np.asarray(weights[key]))
    finally:
        algo.stop()


def test_gaussian_policy_on_pendulum(ray_local):
    algo = _config("Pendulum-v1", shared_torso=True, initial_log_std=-0.5).build_algo()
    try:
        result = algo.train()
        assert np.isfinite(result["learners"][DEFAULT_MODULE_ID]["entropy"])
        module = algo.get_module(DEFAULT_MODULE_ID)
        out = module.forward_inference({"obs": torch.zeros(1, 3)})
        inputs = out["action_dist_inputs"]  # [mean, log_std] per action dimension
        assert inputs.shape == (1, 2)
        assert float(inputs[0, 1]) == pytest.approx(-0.5, abs=0.05)
    finally:
        algo.stop()


def test_atari_preset_with_nature_cnn(ray_local):
    config = (
        A2CConfig()
        .atari_defaults()
        .environment(
            rllib_env_name("ALE/Breakout-v5"), env_config={"training": True, "frame_stack": 4}
        )
        .env_runners(num_envs_per_env_runner=2)
        .reporting(min_sample_timesteps_per_iteration=0)
        .debugging(seed=0)
    )
    assert config.optimizer == "rmsprop" and config.rollout_fragment_length == 5
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        sampled = result["env_runners"]["num_env_steps_sampled_lifetime"]
        assert 2 * 2 * 5 <= sampled <= 2 * (2 * 5 + 1)
        learner = result["learners"][DEFAULT_MODULE_ID]
        assert np.isfinite(learner["policy_loss"]) and learner["entropy"] > 1.0  # 4 actions
        module = rllib_compat.local_learner(algo.learner_group).module[DEFAULT_MODULE_ID]
        assert module.image and module.shared and module.vf_torso is None
        assert module.observation_space.shape == (4, 84, 84)
    finally:
        algo.stop()


def test_checkpoint_round_trip(ray_local, tmp_path):
    config = _config(runners=0, envs=4, steps=50)
    algo = config.build_algo()
    try:
        for _ in range(4):
            algo.train()
        steps = algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"))
        weights = algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
        games = algo.game_returns.get_state()
        assert games["games"] > 0
        algo.save_to_path(str(tmp_path))
    finally:
        algo.stop()
    restored = config.build_algo()
    try:
        restored.restore_from_path(str(tmp_path))
        again = restored.learner_group.get_weights()[DEFAULT_MODULE_ID]
        for key in weights:
            np.testing.assert_array_equal(np.asarray(again[key]), np.asarray(weights[key]))
        assert restored.game_returns.get_state() == games
        result = restored.train()
        new = result["env_runners"]["num_env_steps_sampled_lifetime"] - steps
        assert _round_size_ok(new, actors=1, envs=4, steps=50)  # counters continue
    finally:
        restored.stop()


def test_a_local_learners_results_cover_every_round_of_the_iteration(ray_local):
    """With a local Learner the metrics are reduced once per iteration: each iteration's
    results count every env step its rounds trained on (each round trains on what it
    sampled: 2 envs x 8 steps, ~60 rounds), and carry the losses."""
    algo = _config(envs=2, steps=8).reporting(min_sample_timesteps_per_iteration=1000).build_algo()
    try:
        lifetime = 0
        for _ in range(2):
            result = algo.train()
            sampled = int(result["env_runners"]["num_env_steps_sampled"])
            lifetime += sampled
            learners = result["learners"]
            assert sampled >= 1000
            assert int(learners["__all_modules__"]["num_env_steps_trained"]) == sampled
            assert int(learners["__all_modules__"]["num_env_steps_trained_lifetime"]) == lifetime
            assert np.isfinite(float(learners[DEFAULT_MODULE_ID]["policy_loss"]))
    finally:
        algo.stop()


def _iteration_results(*, defer: bool, iterations: int) -> list[dict]:
    algo = _config(envs=3, steps=8).reporting(min_sample_timesteps_per_iteration=300).build_algo()
    algo.defer_local_runner_metrics = defer
    try:
        return [algo.train() for _ in range(iterations)]
    finally:
        algo.stop()


def test_a_local_runners_deferred_metrics_equal_the_per_round_ones(ray_local):
    """Sampling in the Algorithm's process, the EnvRunner's metrics are reduced once per
    iteration (~13 rounds here): the iterations end after the same rounds with the same
    counts as when they are reduced and aggregated round by round, and the episode means are
    those of the iteration's episodes (from the game window: CartPole's return is its length).
    Round by round, RLlib's merge of the rounds' windows skews those means."""
    per_round = _iteration_results(defer=False, iterations=3)
    deferred = _iteration_results(defer=True, iterations=3)
    counts = [
        "num_env_steps_sampled",
        "num_env_steps_sampled_lifetime",
        "num_episodes",
        "num_episodes_lifetime",
        "num_agent_steps_sampled_lifetime",
        "num_module_steps_sampled_lifetime",
        "episode_return_max",
    ]
    games, total = 0.0, 0.0
    for ours, ref in zip(deferred, per_round, strict=True):
        assert ref["env_runners"]["num_env_steps_sampled"] >= 300
        for key in counts:
            assert ours["env_runners"][key] == ref["env_runners"][key], key
        for key, value in ref["learners"]["__all_modules__"].items():
            if key.startswith("num_env_steps") and not key.endswith("_throughput"):
                assert ours["learners"]["__all_modules__"][key] == value, key
        assert ours["game_return_mean"] == ref["game_return_mean"]
        # the iteration's games: the window's sums before and after (fewer than 100 games)
        new_games = ours["games_completed"] - games
        new_total = ours["game_return_mean"] * ours["games_completed"] - total
        games, total = ours["games_completed"], total + new_total
        assert new_games == ours["env_runners"]["num_episodes"] > 0
        mean = new_total / new_games
        assert ours["env_runners"]["episode_return_mean"] == pytest.approx(mean, rel=1e-9)
        assert ours["env_runners"]["episode_len_mean"] == pytest.approx(mean, rel=1e-9)


def test_an_iteration_can_end_on_trained_steps(ray_local):
    """``min_train_timesteps_per_iteration``: RLlib's loop reads the trained-step count between
    rounds, so a local Learner's results are folded in every round there (deferring them to
    the iteration's end would never stop the loop)."""
    algo = (
        _config(envs=2, steps=8)
        .reporting(min_sample_timesteps_per_iteration=0, min_train_timesteps_per_iteration=100)
        .build_algo()
    )
    try:
        result = algo.train()
        trained = int(result["learners"]["__all_modules__"]["num_env_steps_trained"])
        assert 100 <= trained < 100 + 2 * 8 + 2
    finally:
        algo.stop()


@pytest.mark.parametrize(
    "algorithm,model_config,obs_shape,action_space",
    [
        ("a2c", {"hiddens": [32, 16], "activation": "tanh"}, (4,), gym.spaces.Discrete(3)),
        ("a2c", {"hiddens": [32], "activation": "relu"}, (4,), gym.spaces.Discrete(2)),
        ("a2c", {"hiddens": [8], "activation": "tanh"}, (3,), gym.spaces.Box(-2, 2, (2,))),
        ("a2c", {"torso": "cnn", "shared_torso": True}, (4, 84, 84), gym.spaces.Discrete(4)),
        ("reinforce", {"hiddens": [32, 32], "activation": "relu"}, (4,), gym.spaces.Discrete(2)),
    ],
)
def test_acting_forward_gives_the_training_forwards_policy_outputs(
    algorithm, model_config, obs_shape, action_space
):
    """The rollout actors' forward (layers as functional calls) gives exactly the numbers the
    Learner's forward gives for the same weights: in inference mode (rlgen's runner), under
    no_grad and with autograd on (RLlib's runner, evaluation)."""
    from algorithms.a2c.module import A2CTorchRLModule
    from algorithms.reinforce.module import ReinforceTorchRLModule

    torch.manual_seed(3)
    cls = A2CTorchRLModule if algorithm == "a2c" else ReinforceTorchRLModule
    obs_space = gym.spaces.Box(0, 255 if len(obs_shape) == 3 else 5, obs_shape, np.float32)
    module = cls(observation_space=obs_space, action_space=action_space, model_config=model_config)
    with torch.no_grad():  # a trained-looking last layer, not the near-zero initial one
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    obs = torch.rand(5, *obs_shape) * (255 if len(obs_shape) == 3 else 5)
    batch = {Columns.OBS: obs}
    expected = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS].detach()
    with torch.inference_mode():
        acting = [module.forward_exploration(batch, t=0), module.forward_inference(batch)]
    with torch.no_grad():
        acting.append(module.forward_exploration(batch, t=0))
    acting.append(module.forward_inference(batch))
    for out in acting:
        assert torch.equal(out[Columns.ACTION_DIST_INPUTS], expected)
