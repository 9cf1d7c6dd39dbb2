"""Tier 2: DQN on a real local Ray cluster: CartPole with 0 and 2 rollout actors, an Atari smoke
run on a real ROM with frame stacking, and a checkpoint that carries the replay memory."""

import numpy as np
import pytest
from ray.rllib.core import DEFAULT_MODULE_ID

from algorithms.dqn.algorithm import DQNConfig
from envs import rllib_env_name


def _cartpole(**training):
    base = dict(learning_starts=100, rollout_steps_per_iteration=100, replay_capacity=1000)
    return (
        DQNConfig()
        .environment(rllib_env_name("CartPole-v1"))
        .training(**{**base, **training})
        .debugging(seed=0)
    )


@pytest.mark.parametrize("num_env_runners", [0, 2])
def test_cartpole_iterations_fill_replay_and_learn(ray_local, num_env_runners):
    algo = (
        _cartpole(prioritized_replay=True, n_step=3)
        .env_runners(num_env_runners=num_env_runners)
        .build_algo()
    )
    try:
        for _ in range(3):
            result = algo.train()
        assert 250 <= len(algo.replay) <= 1000
        learner = result["learners"][DEFAULT_MODULE_ID]
        assert np.isfinite(learner["td_loss"]) and np.isfinite(learner["q_mean"])
        assert result["replay_size"] == len(algo.replay)
    finally:
        algo.stop()


def test_breakout_smoke_with_frame_stacking(ray_local):
    config = (
        DQNConfig()
        .atari_defaults()
        .environment(
            rllib_env_name("ALE/Breakout-v5"), env_config={"training": True, "frame_stack": 4}
        )
        .training(
            learning_starts=200,
            rollout_steps_per_iteration=200,
            replay_capacity=2000,
            updates_per_learner_call=8,
            prioritized_replay=True,
        )
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        for _ in range(3):
            result = algo.train()
        assert algo.replay.stack == 4 and algo.replay.frames.shape[1:] == (84, 84)
        assert algo.replay.frames.dtype == np.uint8
        assert len(algo.replay) >= 590
        assert result["replay_bytes_per_transition"] <= 7.5 * 1024
        learner = result["learners"][DEFAULT_MODULE_ID]
        assert np.isfinite(learner["td_loss"])
        module = algo.get_module(DEFAULT_MODULE_ID)
        assert module.q_net.image  # the Nature CNN torso on (4, 84, 84) uint8 stacks
    finally:
        algo.stop()


def test_checkpoint_carries_replay_when_asked(ray_local, tmp_path):
    config = _cartpole(store_replay_in_checkpoint=True)
    algo = config.build_algo()
    try:
        algo.train()
        algo.train()
        size, frames = len(algo.replay), algo.replay.frames.copy()
        algo.save_to_path(str(tmp_path))
    finally:
        algo.stop()
    restored = config.build_algo()
    try:
        assert len(restored.replay) == 0
        restored.restore_from_path(str(tmp_path))
        assert len(restored.replay) == size
        np.testing.assert_array_equal(restored.replay.frames, frames)
        restored.train()  # sampling continues from the restored memory
        assert len(restored.replay) > size
    finally:
        restored.stop()


def test_breakout_on_the_vector_backend(ray_local):
    from algorithms.configure import RLRunSpec, build_config

    spec = RLRunSpec(
        algorithm="dqn",
        env="ALE/Breakout-v5",
        num_envs_per_env_runner=4,
        overrides={
            "rollout_backend": "vector",
            "learning_starts": 200,
            "rollout_steps_per_iteration": 200,
            "replay_capacity": 2000,
            "updates_per_learner_call": 8,
        },
    )
    algo = build_config(spec).build_algo()
    try:
        for _ in range(3):
            result = algo.train()
        assert algo.env_runner.num_envs == 4
        assert algo.replay.frames.shape[1:] == (84, 84) and len(algo.replay) >= 550
        assert np.isfinite(result["learners"][DEFAULT_MODULE_ID]["td_loss"])
    finally:
        algo.stop()


def test_one_remote_learner_takes_the_tight_loop(ray_local):
    # With one Learner actor (as on a GPU node) the replay sample crosses to it and the TD
    # errors come back for the priorities.
    algo = (
        _cartpole(prioritized_replay=True)
        .learners(num_learners=1, num_cpus_per_learner=1)
        .build_algo()
    )
    try:
        for _ in range(3):
            result = algo.train()
        [updates] = algo.learner_group.foreach_learner(lambda learner: learner.num_updates)
        assert updates.get() > 0
        assert np.isfinite(result["learners"][DEFAULT_MODULE_ID]["td_loss"])
        # Priorities were refreshed from TD errors: new transitions all enter at one value.
        tree, replay = algo.replay.tree, algo.replay
        leaves = tree.nodes[tree.size : tree.size + replay.capacity][replay.has_action]
        assert len(np.unique(leaves)) > 1
    finally:
        algo.stop()


def test_prioritized_updates_draw_each_minibatch_over_the_whole_memory(ray_local):
    algo = _cartpole(
        prioritized_replay=True, learning_starts=10**6, updates_per_learner_call=4
    ).build_algo()
    try:
        for _ in range(3):
            algo.train()  # fills the replay; no learning yet
        replay, calls = algo.replay, []
        sample, update = replay.sample, replay.update_priorities

        def recording_sample(n, *, beta):
            batch = sample(n, beta=beta)
            calls.append(("sample", n, np.ptp(batch.indices)))
            return batch

        def recording_update(indices, td):
            calls.append(("update", len(indices), None))
            update(indices, td)

        replay.sample, replay.update_priorities = recording_sample, recording_update
        algo._learn(env_steps=300, num_updates=4)
        # One minibatch per draw, its priorities refreshed before the next draw, and each
        # minibatch reaching across the memory (not a quarter of it in slot order).
        assert [c[0] for c in calls] == ["sample", "update"] * 4
        size = algo.config.train_batch_size_per_learner
        assert all(n == size for _, n, _ in calls)
        assert all(span > 0.8 * replay.num_slots for kind, _, span in calls if kind == "sample")
    finally:
        algo.stop()
