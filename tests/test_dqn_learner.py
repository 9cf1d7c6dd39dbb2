"""Tier 1-2: the DQN Learner's tight update loop against RLlib's own Learner.update path, target
syncs at the exact gradient step, and the non-finite guard (no Ray cluster needed)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from algorithms.common import metrics as M
from algorithms.dqn.algorithm import DQNConfig
from algorithms.dqn.learner import DISCOUNT, NEXT_OBS, RETURNS, TD_ERROR, WEIGHTS

STEPS = {"num_env_steps_sampled_lifetime": 0}


def _learner(**training):
    config = DQNConfig().environment("CartPole-v1").training(**training).debugging(seed=0)
    return config.build_learner(env=gym.make("CartPole-v1"))


def _columns(rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        Columns.OBS: rng.normal(size=(rows, 4)).astype(np.float32),
        Columns.ACTIONS: rng.integers(0, 2, size=rows),
        NEXT_OBS: rng.normal(size=(rows, 4)).astype(np.float32),
        RETURNS: rng.uniform(-1, 2, size=rows).astype(np.float32),
        DISCOUNT: np.where(rng.random(rows) < 0.2, 0.0, 0.97).astype(np.float32),
        WEIGHTS: rng.uniform(0.5, 1.0, size=rows).astype(np.float32),
    }


def _q_params(learner):
    return [p.detach().clone() for p in learner.module[DEFAULT_MODULE_ID].q_net.parameters()]


def test_tight_loop_matches_rllib_update_path():
    # Same weights, same 4 minibatches of 16, no target sync inside: both paths must take the
    # same 4 Adam steps and report the same TD errors.
    tight, rllib = _learner(target_update_period=1000), _learner(target_update_period=1000)
    rllib.module[DEFAULT_MODULE_ID].load_state_dict(tight.module[DEFAULT_MODULE_ID].state_dict())
    columns = _columns(64)
    _, td_tight = tight.update_from_replay(columns, minibatch_size=16, timesteps=STEPS)
    batch = MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(dict(columns))}, env_steps=64)
    results = rllib.update(
        batch=batch, timesteps=STEPS, minibatch_size=16, num_epochs=1, shuffle_batch_per_epoch=False
    )
    td_rllib = np.asarray(results[DEFAULT_MODULE_ID][TD_ERROR].peek()).reshape(-1)
    assert tight.num_updates == rllib.num_updates == 4
    np.testing.assert_allclose(td_tight, td_rllib, rtol=1e-5, atol=1e-6)
    for a, b in zip(_q_params(tight), _q_params(rllib), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(_q_params(tight)[0], _q_params(_learner())[0])  # it did move


def test_hard_target_sync_happens_at_the_due_step():
    learner = _learner(target_update_period=4)
    module = learner.module[DEFAULT_MODULE_ID]

    def target_equals_online() -> bool:
        pairs = zip(module.q_net.parameters(), module.target_net.parameters(), strict=True)
        return all(torch.equal(a, b) for a, b in pairs)

    learner.update_from_replay(_columns(4 * 8), minibatch_size=8, timesteps=STEPS)
    assert learner.num_updates == 4 and target_equals_online()  # synced after step 4
    learner.update_from_replay(_columns(3 * 8, seed=1), minibatch_size=8, timesteps=STEPS)
    assert learner.num_updates == 7 and not target_equals_online()  # next sync at step 8


def test_nonfinite_loss_leaves_weights_untouched():
    # After a normal step Adam has momentum; a NaN step must not move the weights through it.
    learner = _learner()
    learner.update_from_replay(_columns(16, seed=1), minibatch_size=16, timesteps=STEPS)
    before = _q_params(learner)
    columns = _columns(16)
    columns[RETURNS][3] = np.nan
    results, _ = learner.update_from_replay(columns, minibatch_size=16, timesteps=STEPS)
    assert results[M.NONFINITE_UPDATES] == 1
    for a, b in zip(before, _q_params(learner), strict=True):
        torch.testing.assert_close(a, b)


def test_global_norm_clip_applies_to_the_gradient_stepped():
    """The optimizer steps with the gradient scaled to global norm ``grad_clip`` when it is
    larger; the logged norm is the one before clipping."""
    for clip in (1e-4, 1e4):
        learner = _learner(grad_clip=clip, grad_clip_by="global_norm")
        results, _ = learner.update_from_replay(_columns(16), minibatch_size=16, timesteps=STEPS)
        grads = [p.grad for p in learner.module[DEFAULT_MODULE_ID].q_net.parameters()]
        stepped = float(torch.nn.utils.get_total_norm([g for g in grads if g is not None]))
        measured = float(results[M.GRAD_NORM])
        assert measured > 1e-2
        assert stepped == pytest.approx(min(measured, clip), rel=1e-4)
