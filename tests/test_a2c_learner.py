"""Tier 1: the A2C Learner's loss, optimizer and entropy schedule, on a real Learner built from
the config (no Ray cluster needed) and a batch from its own learner pipeline."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from algorithms import rllib_compat
from algorithms.a2c.algorithm import A2CConfig
from algorithms.common import pg_losses as losses
from algorithms.common.schedules import piecewise_linear, scalar_or_schedule

OBS = gym.spaces.Box(-10.0, 10.0, (4,), np.float32)
ACT = gym.spaces.Discrete(3)


def _learner(**training):
    config = A2CConfig().training(**training).debugging(seed=0)
    return config.build_learner(spaces={DEFAULT_MODULE_ID: (OBS, ACT)})  # built


def _episodes(n=3, length=10):
    rng = np.random.default_rng(0)
    return [
        SingleAgentEpisode(
            observations=list(rng.normal(size=(length + 1, 4)).astype(np.float32)),
            actions=[int(a) for a in rng.integers(0, 3, size=length)],
            rewards=list(rng.normal(size=length)),
            observation_space=OBS,
            action_space=ACT,
            terminated=i == 0,
            len_lookback_buffer=0,
        )
        for i in range(n)
    ]


def _loss(learner, *, vf_coeff):
    batch = rllib_compat.learner_connector(learner)(
        rl_module=learner.module, batch={}, episodes=_episodes(), metrics=learner.metrics
    )[DEFAULT_MODULE_ID]
    module = learner.module[DEFAULT_MODULE_ID]
    fwd = module.forward_train(batch)
    config = learner.config.copy(copy_frozen=False)
    config.vf_coeff = vf_coeff
    return learner.compute_loss_for_module(
        module_id=DEFAULT_MODULE_ID, config=config, batch=batch, fwd_out=fwd
    )


def _grads(module, loss):
    module.zero_grad()
    loss.backward()
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in module.named_parameters()}  # fmt: skip


@pytest.mark.parametrize("shared_torso", [True, False])
def test_value_term_does_not_move_the_policy_logits(shared_torso):
    learner = _learner(shared_torso=shared_torso, entropy_coeff=0.01)
    module = learner.module[DEFAULT_MODULE_ID]
    with_value = _grads(module, _loss(learner, vf_coeff=1.0))
    without_value = _grads(module, _loss(learner, vf_coeff=0.0))
    for name in ("pi_head.weight", "pi_head.bias"):
        torch.testing.assert_close(with_value[name], without_value[name])
        assert with_value[name].abs().sum() > 0
    assert with_value["vf_head.weight"].abs().sum() > 0
    assert without_value["vf_head.weight"].abs().sum() == 0  # policy term: V detached
    torso = [n for n in with_value if n.startswith("pi_torso.")]
    differs = any(not torch.equal(with_value[n], without_value[n]) for n in torso)
    # One shared torso learns from both heads; a separate policy torso only from the policy.
    assert differs == shared_torso


def test_advantage_built_from_values_is_detached_in_the_policy_term():
    values = torch.randn(6, requires_grad=True)
    logp = torch.randn(6, requires_grad=True)
    adv = torch.randn(6) - values  # as if A = G - V(s) were built inside the graph
    losses.policy_gradient_loss(logp_B=logp, advantages_B=adv).backward()
    assert values.grad is None and logp.grad is not None


@pytest.mark.parametrize("name,cls", [("rmsprop", torch.optim.RMSprop), ("adam", torch.optim.Adam)])
def test_optimizer_choice(name, cls):
    learner = _learner(optimizer=name, lr=7e-4)
    [optimizer] = learner.get_optimizers_for_module(DEFAULT_MODULE_ID)
    assert isinstance(optimizer[1], cls)
    assert optimizer[1].param_groups[0]["lr"] == pytest.approx(7e-4)


def test_entropy_coefficient_schedule_follows_env_steps():
    learner = _learner(entropy_coeff=[[0, 0.02], [1000, 0.0]])
    assert learner.entropy_coeff == pytest.approx(0.02)
    learner.before_gradient_based_update(timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 250})
    assert learner.entropy_coeff == pytest.approx(0.015)
    learner.before_gradient_based_update(timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 5000})
    assert learner.entropy_coeff == 0.0


def test_piecewise_linear_schedule():
    points = [[0, 1.0], [100, 0.5], [300, 0.5], [400, 0.0]]
    assert piecewise_linear(-5, points) == 1.0
    assert piecewise_linear(50, points) == pytest.approx(0.75)
    assert piecewise_linear(200, points) == 0.5
    assert piecewise_linear(350, points) == pytest.approx(0.25)
    assert piecewise_linear(10_000, points) == 0.0
    assert scalar_or_schedule(0.01, 123) == 0.01


def test_one_update_step_changes_weights_and_logs_metrics():
    learner = _learner()
    before = {k: v.clone() for k, v in learner.module[DEFAULT_MODULE_ID].state_dict().items()}
    results = learner.update(episodes=_episodes(), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 30})
    after = learner.module[DEFAULT_MODULE_ID].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    stats = results[DEFAULT_MODULE_ID]
    for key in ("policy_loss", "value_loss", "entropy", "entropy_coeff", "advantage_std"):
        assert np.isfinite(float(stats[key].peek())), key


@pytest.mark.parametrize("clip", [1e-3, 1e3])
def test_global_norm_clip_applies_to_the_gradient_stepped(clip):
    """The gradient the optimizer steps with has global norm min(norm, grad_clip); the logged
    norm is the one before clipping."""
    learner = _learner(grad_clip=clip)
    results = learner.update(episodes=_episodes(), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0})
    measured = float(results["grad_norm"].peek())
    grads = [p.grad for p in learner.module[DEFAULT_MODULE_ID].parameters() if p.grad is not None]
    stepped = float(torch.nn.utils.get_total_norm(grads))
    assert measured > 1e-2
    assert stepped == pytest.approx(min(measured, clip), rel=1e-4)
