"""Tier 1: REINFORCE loss values and gradients, by hand and through the real Learner."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from algorithms.common import pg_losses as losses
from algorithms.reinforce.algorithm import ReinforceConfig
from algorithms.reinforce.connectors import RETURNS


def test_policy_gradient_loss_value():
    # L = -mean(logp * A) = -mean([-1 * 2, -2 * 1]) = -(-4 / 2) = 2
    loss = losses.policy_gradient_loss(
        logp_B=torch.tensor([-1.0, -2.0]), advantages_B=torch.tensor([2.0, 1.0])
    )
    assert loss.item() == pytest.approx(2.0)


def test_policy_gradient_matches_score_function_by_hand():
    # Categorical: d log softmax(z)_a / dz = onehot(a) - softmax(z), so
    # dL/dz_b = -(onehot(a_b) - softmax(z_b)) * A_b / B
    logits = torch.tensor([[0.5, -0.5], [0.0, 1.0]], requires_grad=True)
    actions = torch.tensor([0, 1])
    adv = torch.tensor([1.5, -2.0])
    logp = torch.distributions.Categorical(logits=logits).log_prob(actions)
    losses.policy_gradient_loss(logp_B=logp, advantages_B=adv).backward()
    probs = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(actions, 2).float()
    expected = -(onehot - probs) * adv[:, None] / 2
    torch.testing.assert_close(logits.grad, expected)


def test_baseline_gets_no_gradient_from_policy_term():
    values = torch.tensor([0.3, -0.7, 1.1], requires_grad=True)
    returns = torch.tensor([1.0, 2.0, 3.0])
    logits = torch.zeros(3, 2, requires_grad=True)
    logp = torch.distributions.Categorical(logits=logits).log_prob(torch.tensor([0, 1, 0]))
    adv = losses.advantages(returns_B=returns, baseline_B=values)
    losses.policy_gradient_loss(logp_B=logp, advantages_B=adv).backward()
    assert values.grad is None
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_value_loss_value_and_gradient():
    # L_V = mean((V - G)^2) = (1 + 4) / 2 = 2.5 (no 1/2: vf_coeff = 0.5 is the A2C baselines'
    # 0.5 * MSE); dL/dV = 2 (V - G) / B = [1, -2]
    values = torch.tensor([1.0, 0.0], requires_grad=True)
    loss = losses.value_loss(values_B=values, returns_B=torch.tensor([0.0, 2.0]))
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([1.0, -2.0]))


def test_scaling_advantages_keeps_their_mean_and_total_loss():
    # rms([1, 2, 3, 6]) = sqrt((1 + 4 + 9 + 36) / 4) = sqrt(12.5); scaled, never centred, so a
    # baseline that moved the mean still moves it.
    raw = torch.tensor([1.0, 2.0, 3.0, 6.0])
    adv = losses.scale_advantages(raw, rms=raw.pow(2).mean().sqrt())
    torch.testing.assert_close(adv, raw / 12.5**0.5)
    assert adv.mean().item() == pytest.approx(3.0 / 12.5**0.5, rel=1e-5)
    total = losses.total_loss(
        policy_loss=torch.tensor(1.0),
        value_loss=torch.tensor(2.0),
        entropy=torch.tensor(0.5),
        vf_coeff=0.25,
        entropy_coeff=0.1,
    )
    assert total.item() == pytest.approx(1.0 + 0.25 * 2.0 - 0.1 * 0.5)


def _learner_and_batch(baseline: str, vf_coeff: float, normalization: str = "none"):
    config = (
        ReinforceConfig()
        .environment("CartPole-v1")
        .training(baseline=baseline, vf_coeff=vf_coeff, advantage_normalization=normalization)
    )
    learner = config.build_learner(env=gym.make("CartPole-v1"))
    rng = np.random.default_rng(0)
    batch = {
        Columns.OBS: torch.as_tensor(rng.normal(size=(8, 4)), dtype=torch.float32),
        Columns.ACTIONS: torch.as_tensor(rng.integers(0, 2, size=8)),
        RETURNS: torch.as_tensor(rng.uniform(1, 20, size=8), dtype=torch.float32),
    }
    return config, learner, batch


def _loss_grads(config, learner, batch):
    module = learner.module[DEFAULT_MODULE_ID]
    module.zero_grad()
    fwd = module.forward_train(batch)
    loss = learner.compute_loss_for_module(
        module_id=DEFAULT_MODULE_ID, config=config, batch=batch, fwd_out=fwd
    )
    loss.backward()
    return module


def test_learner_policy_term_leaves_value_net_untouched():
    # With vf_coeff = 0 the total loss is the policy term alone: the value net gets no gradient.
    config, learner, batch = _learner_and_batch("value", vf_coeff=0.0)
    module = _loss_grads(config, learner, batch)
    vf_grads = [p.grad for p in module.vf.parameters()]
    assert all(g is None or torch.count_nonzero(g) == 0 for g in vf_grads)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.pi.parameters())
    # With vf_coeff > 0 the value net is trained by regression.
    config, learner, batch = _learner_and_batch("value", vf_coeff=1.0)
    module = _loss_grads(config, learner, batch)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.vf.parameters())


def test_learner_moving_average_baseline_is_subtracted():
    # Advantages are G - b: with b equal to every return, the policy gradient vanishes.
    config, learner, batch = _learner_and_batch("moving_average", vf_coeff=1.0)
    batch[RETURNS] = torch.full((8,), 7.0)
    learner.set_moving_average_baseline(7.0)
    module = _loss_grads(config, learner, batch)
    assert all(torch.count_nonzero(p.grad) == 0 for p in module.pi.parameters())
    learner.set_moving_average_baseline(0.0)
    module = _loss_grads(config, learner, batch)
    assert any(torch.count_nonzero(p.grad) > 0 for p in module.pi.parameters())


@pytest.mark.parametrize("normalization", ["scale", "none", "auto"])
def test_every_constant_baseline_keeps_its_meaning_with_normalization(normalization):
    # One learner (one set of weights), the loss read under different baseline settings.
    # Normalization only scales G - b, so b = 5 and b = 0 give different gradients, and the
    # batch-mean baseline equals the constant b = mean(G) of the same batch.
    _, learner, batch = _learner_and_batch("moving_average", 1.0, normalization)

    def policy_grads(baseline, b=0.0):
        config = ReinforceConfig().training(
            baseline=baseline, advantage_normalization=normalization
        )
        learner.set_moving_average_baseline(b)
        module = _loss_grads(config, learner, batch)
        return [p.grad.clone() for p in module.pi.parameters()]

    def same(a, b):
        return all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b, strict=True))

    none = policy_grads("none")
    assert same(none, policy_grads("moving_average", b=0.0))
    assert not same(none, policy_grads("moving_average", b=5.0))
    batch_mean = policy_grads("batch_mean")
    assert same(batch_mean, policy_grads("moving_average", b=float(batch[RETURNS].mean())))
    assert not same(none, batch_mean)


@pytest.mark.parametrize("num_actions", [2, 3, 7])
def test_categorical_logp_and_entropy_equal_rllibs_distribution(num_actions):
    """The one-log-softmax path gives RLlib's TorchCategorical values and gradients, also for
    large and -inf logits (a masked action); Gaussian inputs still go through RLlib's class."""
    from ray.rllib.core.distribution.torch.torch_distribution import (
        TorchCategorical,
        TorchDiagGaussian,
    )

    gen = torch.Generator().manual_seed(num_actions)
    raw = torch.randn(64, num_actions, generator=gen) * 4.0
    raw[0, 0] = 60.0
    actions = torch.randint(0, num_actions, (64,), generator=gen)
    raw[1, (int(actions[1]) + 1) % num_actions] = float("-inf")  # not the action taken
    ours_in, theirs_in = raw.clone().requires_grad_(), raw.clone().requires_grad_()
    logp, entropy = losses.logp_and_entropy(TorchCategorical, ours_in, actions)
    dist = TorchCategorical.from_logits(theirs_in)
    ref_logp, ref_entropy = dist.logp(actions), dist.entropy()
    torch.testing.assert_close(logp, ref_logp)
    torch.testing.assert_close(entropy, ref_entropy)
    assert torch.isfinite(entropy).all()
    (logp.sum() + 0.3 * entropy.sum()).backward()
    (ref_logp.sum() + 0.3 * ref_entropy.sum()).backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad)

    gauss_in = torch.randn(5, 4, generator=gen)
    acts = torch.randn(5, 2, generator=gen)
    g_logp, g_entropy = losses.logp_and_entropy(TorchDiagGaussian, gauss_in, acts)
    ref = TorchDiagGaussian.from_logits(gauss_in)
    torch.testing.assert_close(g_logp, ref.logp(acts))
    torch.testing.assert_close(g_entropy, ref.entropy())
