"""PPO's loss against hand-computed numbers, its minibatch plan, and one Learner update against a
reference loop written out here (old log-probabilities, per-minibatch advantage normalization,
the clipped surrogate, the global-norm clip, Adam), on a real local Ray instance."""

import math

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from algorithms.ppo import losses

# Four steps whose ratios r = pi / pi_old are 1.5, 1.5, 0.5, 0.9 (clip eps 0.2).
RATIOS = [1.5, 1.5, 0.5, 0.9]
ADVANTAGES = [1.0, -1.0, 2.0, -0.5]


def _four_steps():
    old = torch.tensor([-1.0, -0.7, -2.0, -0.3], dtype=torch.float64)
    logp = (old + torch.log(torch.tensor(RATIOS, dtype=torch.float64))).requires_grad_()
    return logp, old, torch.tensor(ADVANTAGES, dtype=torch.float64)


def test_clipped_surrogate_by_hand():
    """min(r A, clip(r, 0.8, 1.2) A) per step: 1.2 (r clipped above on A > 0), -1.5 (r past
    1.2 on A < 0 counts whole), 1.0 (r under 0.8 on A > 0 counts whole), -0.45 (inside);
    loss -mean = -0.0625. The gradient wrt log pi is -r A / 4 where the unclipped term is the
    minimum, 0 where the clipped one is."""
    logp, old, adv = _four_steps()
    loss, ratio = losses.clipped_surrogate(logp_B=logp, old_logp_B=old, advantages_B=adv, clip=0.2)
    assert torch.allclose(ratio, torch.tensor(RATIOS, dtype=torch.float64))
    assert float(loss.detach()) == pytest.approx(-(1.2 - 1.5 + 1.0 - 0.45) / 4)
    loss.backward()
    expected = [0.0, -1.5 * -1.0 / 4, -0.5 * 2.0 / 4, -0.9 * -0.5 / 4]
    assert logp.grad.tolist() == pytest.approx(expected)


def test_value_clipping_by_hand():
    """V = (1, 3), V_old = (0, 2.9), targets (2, 0), c = 0.5: the clipped predictions are 0.5
    and 3.0, the larger errors 2.25 and 9 (mean 5.625; unclipped: mean(1, 9) = 5). The first
    row's larger error is the clipped one, which a step of V no longer changes: gradient 0."""
    values = torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)
    kw = {"old_values_B": torch.tensor([0.0, 2.9], dtype=torch.float64),
          "returns_B": torch.tensor([2.0, 0.0], dtype=torch.float64)}  # fmt: skip
    plain = losses.clipped_value_loss(values_B=values, vf_clip=None, **kw)
    assert float(plain.detach()) == pytest.approx(5.0)
    clipped = losses.clipped_value_loss(values_B=values, vf_clip=0.5, **kw)
    assert float(clipped.detach()) == pytest.approx(5.625)
    clipped.backward()
    assert values.grad.tolist() == pytest.approx([0.0, 2 * 3.0 / 2])


def test_ppo_loss_adds_its_terms_and_measures_kl_and_clipping():
    logp, old, adv = _four_steps()
    entropy = torch.tensor([0.6, 0.5, 0.4, 0.3], dtype=torch.float64)
    values = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    returns = torch.tensor([0.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    terms = losses.ppo_loss(
        logp_B=logp, old_logp_B=old, advantages_B=adv, entropy_B=entropy, values_B=values,
        old_values_B=values, returns_B=returns, clip=0.2, vf_clip=None, vf_coeff=0.5,
        entropy_coeff=0.01,
    )  # fmt: skip
    policy, value, ent = -0.0625, (1.0 + 4.0) / 4, 0.45
    assert float(terms.total) == pytest.approx(policy + 0.5 * value - 0.01 * ent)
    assert (float(terms.policy_loss), float(terms.value_loss)) == pytest.approx((policy, value))
    # KL(pi_old || pi) ~ mean[(r - 1) - log r], every term >= 0
    kl = sum(r - 1 - math.log(r) for r in RATIOS) / 4
    assert float(terms.approx_kl) == pytest.approx(kl)
    assert float(terms.clip_fraction) == pytest.approx(0.75)  # 1.5, 1.5, 0.5 outside [0.8, 1.2]


def test_minibatch_plan_shuffles_and_splits_the_same_for_one_or_two_learners():
    n, m, epochs = 23, 3, 4
    [whole] = [losses.minibatch_rows(np.arange(n), num_rows=n, num_minibatches=m,
                                     num_epochs=epochs, seed=[7, 100])]  # fmt: skip
    for parts in whole:
        assert len(parts) == m and sorted(np.concatenate(parts).tolist()) == list(range(n))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(whole, whole[1:], strict=False))
    # Two Learners holding rows {0, 5, 6, 7, ...} and the rest, each in its own order.
    first = np.array([9, 0, 5, 6, 7, 20, 21, 22])
    second = np.setdiff1d(np.arange(n), first)[::-1]
    plans = [losses.minibatch_rows(rows, num_rows=n, num_minibatches=m, num_epochs=epochs,
                                   seed=[7, 100]) for rows in (first, second)]  # fmt: skip
    for e in range(epochs):
        for k in range(m):
            mine = np.concatenate([first[plans[0][e][k]], second[plans[1][e][k]]])
            assert sorted(mine.tolist()) == sorted(whole[e][k].tolist()), (e, k)
    other = losses.minibatch_rows(np.arange(n), num_rows=n, num_minibatches=m, num_epochs=1,
                                  seed=[7, 101])  # fmt: skip
    assert not np.array_equal(other[0][0], whole[0][0])


def _reference_update(module, batch, plan, *, lr, clip, grad_clip):
    """The PPO update written out: per minibatch, advantages centred and scaled over the
    minibatch, the clipped surrogate, 0.5 x MSE value loss, the global-norm clip, Adam."""
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    for parts in plan:
        for rows in parts:
            idx = torch.as_tensor(rows)
            out = module.forward_train({"obs": batch["obs"][idx]})
            logp = torch.log_softmax(out["action_dist_inputs"], -1).gather(
                -1, batch["actions"][idx].long().unsqueeze(-1)).squeeze(-1)  # fmt: skip
            adv = batch["advantages"][idx].double()
            adv = ((adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)).float()
            ratio = torch.exp(logp - batch["old_logp"][idx])
            surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
            value = (out["vf_preds"] - batch["value_targets"][idx]).pow(2).mean()
            loss = -surrogate.mean() + 0.5 * value
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
            opt.step()


def test_one_update_is_the_written_out_ppo_update(ray_local):
    """A Learner update with 2 epochs of 3 minibatches equals the reference loop on the same
    batch and plan: the old log-probabilities are the sampling policy's, advantages are
    normalized per minibatch (over the whole batch they would differ), the steps follow the
    plan (a wrong row order or minibatch would differ)."""
    import copy

    from algorithms.ppo.algorithm import PPOConfig
    from algorithms.ppo.learner import global_rows
    from algorithms.rllib_compat import local_learner

    config = (
        PPOConfig().environment("CartPole-v1", env_config={"max_episode_steps": 20})
        .env_runners(num_envs_per_env_runner=3, rollout_fragment_length=16)
        .training(num_epochs=2, minibatch_size=16, lr=1e-3, clip_param=0.2, grad_clip=0.5)
        .debugging(seed=3)
    )  # fmt: skip
    algo = config.build_algo()
    try:
        learner = local_learner(algo.learner_group)
        module = learner.module[DEFAULT_MODULE_ID].unwrapped()
        before = copy.deepcopy(module)
        algo.env_runner.env.single_action_space.seed(0)
        episodes = algo.env_runner.sample(num_timesteps=48, random_actions=True)
        batch = learner.batch_from_episodes(type("T", (), {"episodes": episodes})())
        columns = dict(batch.policy_batches[DEFAULT_MODULE_ID])
        n = len(columns["advantages"])
        with torch.no_grad():  # the old policy's log-probabilities: the module's own
            logits = before.forward_train({"obs": columns["obs"]})["action_dist_inputs"]
            old = torch.log_softmax(logits, -1).gather(
                -1, columns["actions"].long().unsqueeze(-1)).squeeze(-1)  # fmt: skip
        torch.testing.assert_close(columns["old_logp"], old)
        order, _ = global_rows([learner._chunks], 0)  # the batch's rows in the plan's order
        plan = losses.minibatch_rows(order, num_rows=n, num_minibatches=round(n / 16),
                                     num_epochs=2, seed=[3, 0])  # fmt: skip
        assert len(plan[0]) == 3
        algo.update_learners(episodes)
        _reference_update(before, columns, plan, lr=1e-3, clip=0.2, grad_clip=0.5)
        for (name, ours), theirs in zip(module.state_dict().items(), before.state_dict().values(),
                                         strict=True):  # fmt: skip
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6, msg=name)
    finally:
        algo.stop()


def test_the_same_seed_trains_the_same_weights(ray_local):
    """Two builds with one seed, two iterations each: bit-identical weights (the minibatch plan
    orders chunks by keys of their content, not by RLlib's random episode ids)."""
    from algorithms.ppo.algorithm import PPOConfig

    def trained():
        algo = (
            PPOConfig().environment("CartPole-v1")
            .env_runners(num_envs_per_env_runner=4, rollout_fragment_length=32)
            .training(minibatch_size=32, num_epochs=2)
            .reporting(min_sample_timesteps_per_iteration=256)
            .debugging(seed=5)
            .build_algo()
        )  # fmt: skip
        try:
            algo.train()
            algo.train()
            return algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
        finally:
            algo.stop()

    first, second = trained(), trained()
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name
