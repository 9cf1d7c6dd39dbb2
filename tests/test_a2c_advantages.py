"""Tier 1: A2C's advantages. Hand-computed n-step and GAE(lambda) values on short episodes that
terminate, truncate or are cut by the rollout length; the connector's per-chunk bootstrap
choice through the real learner pipeline; parity with RLlib's own GAE connector."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.connectors.learner import AddOneTsToEpisodesAndTruncate, GeneralAdvantageEstimation
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from algorithms.a2c.algorithm import A2CConfig
from algorithms.a2c.connectors import (
    ADVANTAGES,
    VALUE_TARGETS,
    GeneralizedAdvantages,
    advantage_batch,
)
from algorithms.a2c.module import A2CTorchRLModule
from algorithms.common.returns import (
    discounted_cumsum,
    gae_advantages,
    gae_advantages_batch,
    reward_to_go,
)

OBS = gym.spaces.Box(-10.0, 10.0, (4,), np.float32)
ACT = gym.spaces.Discrete(2)


# --- the estimator, by hand -----------------------------------------------------------------


def test_n_step_terminated_never_bootstraps():
    # lambda = 1, gamma = 0.9, V = [0.5, 0.4, 0.3], episode terminated after 3 steps:
    # G_2 = 1, G_1 = 1 + 0.9 = 1.9, G_0 = 1 + 0.9 * 1.9 = 2.71; A = G - V
    adv, target = gae_advantages(
        [1, 1, 1], [0.5, 0.4, 0.3], bootstrap_value=0.0, gamma=0.9, lambda_=1.0
    )
    np.testing.assert_allclose(target, [2.71, 1.9, 1.0], rtol=1e-6)
    np.testing.assert_allclose(adv, [2.21, 1.5, 0.7], rtol=1e-6)


def test_n_step_truncated_or_cut_bootstraps_with_last_value():
    # V(s_3) = 2: G_2 = 1 + 0.9 * 2 = 2.8, G_1 = 1 + 0.9 * 2.8 = 3.52, G_0 = 1 + 0.9 * 3.52
    adv, target = gae_advantages(
        [1, 1, 1], [0.5, 0.4, 0.3], bootstrap_value=2.0, gamma=0.9, lambda_=1.0
    )
    np.testing.assert_allclose(target, [4.168, 3.52, 2.8], rtol=1e-6)
    np.testing.assert_allclose(adv, [3.668, 3.12, 2.5], rtol=1e-6)


def test_gae_by_hand():
    # gamma = 0.9, lambda = 0.5, rewards [1, 0], V = [1, 2].
    # Terminated: delta_1 = 0 - 2 = -2, delta_0 = 1 + 0.9 * 2 - 1 = 1.8,
    #   A_1 = -2, A_0 = 1.8 + 0.45 * (-2) = 0.9; targets = A + V = [1.9, 0].
    adv, target = gae_advantages([1, 0], [1, 2], bootstrap_value=0.0, gamma=0.9, lambda_=0.5)
    np.testing.assert_allclose(adv, [0.9, -2.0], rtol=1e-6)
    np.testing.assert_allclose(target, [1.9, 0.0], atol=1e-6)
    # Truncated with V(s_2) = 3: delta_1 = 0 + 0.9 * 3 - 2 = 0.7, A_0 = 1.8 + 0.45 * 0.7.
    adv, _ = gae_advantages([1, 0], [1, 2], bootstrap_value=3.0, gamma=0.9, lambda_=0.5)
    np.testing.assert_allclose(adv, [2.115, 0.7], rtol=1e-6)


def test_lambda_zero_is_the_td_error():
    rewards, values = np.array([1.0, -1.0, 2.0]), np.array([0.3, 0.2, 0.1])
    adv, _ = gae_advantages(rewards, values, bootstrap_value=5.0, gamma=0.9, lambda_=0.0)
    next_values = np.array([0.2, 0.1, 5.0])
    np.testing.assert_allclose(adv, rewards + 0.9 * next_values - values, rtol=1e-6)


@pytest.mark.parametrize("bootstrap", [0.0, 1.7])
def test_lambda_one_is_reward_to_go_minus_value(bootstrap):
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=20), rng.normal(size=20)
    adv, target = gae_advantages(
        rewards, values, bootstrap_value=bootstrap, gamma=0.97, lambda_=1.0
    )
    returns = reward_to_go(rewards, gamma=0.97, bootstrap_value=bootstrap)
    np.testing.assert_allclose(target, returns, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, returns - values, rtol=1e-5, atol=1e-5)


def test_gae_matches_its_definition_as_a_sum_of_td_errors():
    rng = np.random.default_rng(1)
    rewards, values = rng.normal(size=12), rng.normal(size=12)
    gamma, lam, v_last = 0.95, 0.8, 0.6
    adv, _ = gae_advantages(rewards, values, bootstrap_value=v_last, gamma=gamma, lambda_=lam)
    deltas = rewards + gamma * np.append(values[1:], v_last) - values
    direct = [sum((gamma * lam) ** k * deltas[t + k] for k in range(12 - t)) for t in range(12)]
    np.testing.assert_allclose(adv, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(discounted_cumsum([1, 1, 1], 0.5), [1.75, 1.5, 1.0])


def test_discounted_cumsum_is_the_recursion_from_the_end_row_by_row():
    """y_t = x_t + f * y_{t+1} in float64, each row of a 2-D array on its own (bit for bit the
    recursion: the result feeds every return and advantage), 1-D and empty inputs alike."""
    x = np.random.default_rng(3).normal(size=(3, 40))
    expected = np.empty_like(x)
    for row in range(3):
        acc = 0.0
        for t in reversed(range(40)):
            acc = x[row, t] + 0.93 * acc
            expected[row, t] = acc
    np.testing.assert_array_equal(discounted_cumsum(x, 0.93), expected)
    np.testing.assert_array_equal(discounted_cumsum(x[1], 0.93), expected[1])
    assert discounted_cumsum(np.zeros((2, 0)), 0.5).shape == (2, 0)


def test_gae_is_the_float64_recursion_bit_for_bit():
    """delta_t = r_t + gamma V(s_{t+1}) - V(s_t), A_t = delta_t + (gamma lambda) A_{t+1}, each
    in float64, then float32: the numbers every A2C batch is made of, bit for bit."""
    rng = np.random.default_rng(4)
    for n in (0, 1, 7, 40):
        rewards, values = rng.normal(size=n) * 5, rng.normal(size=n).astype(np.float32)
        gamma, lam, v_last = 0.99, 0.95, float(rng.normal())
        adv, target = gae_advantages(
            rewards, values, bootstrap_value=v_last, gamma=gamma, lambda_=lam
        )
        expected, acc = np.empty(n), 0.0
        for t in reversed(range(n)):
            next_value = float(values[t + 1]) if t + 1 < n else v_last
            acc = (rewards[t] + gamma * next_value - float(values[t])) + gamma * lam * acc
            expected[t] = acc
        assert np.array_equal(adv, expected.astype(np.float32))
        assert np.array_equal(target, (expected + values.astype(np.float64)).astype(np.float32))


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        gae_advantages([1, 2], [1], bootstrap_value=0.0, gamma=0.9, lambda_=1.0)


# --- the connector in the real learner pipeline -----------------------------------------------


def _module(*, value_is_first_obs_entry: bool, seed: int = 0) -> A2CTorchRLModule:
    torch.manual_seed(seed)
    module = A2CTorchRLModule(
        observation_space=OBS,
        action_space=ACT,
        model_config={"hiddens": [] if value_is_first_obs_entry else [16]},
    )
    if value_is_first_obs_entry:  # no hidden layers: V(s) = w . s + b, set to V(s) = s[0]
        assert module.vf_head is not None
        with torch.no_grad():
            module.vf_head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
            module.vf_head.bias.zero_()
    return module


def _episode(first_obs_entries, rewards, *, terminated=False, truncated=False, rng=None):
    rng = rng or np.random.default_rng(0)
    obs = [
        np.array([v, *rng.normal(size=3)], dtype=np.float32) for v in first_obs_entries
    ]  # V(s) = s[0] for the hand-set module
    return SingleAgentEpisode(
        observations=obs,
        actions=[int(a) for a in rng.integers(0, 2, size=len(rewards))],
        rewards=[float(r) for r in rewards],
        observation_space=OBS,
        action_space=ACT,
        terminated=terminated,
        truncated=truncated,
        len_lookback_buffer=0,
    )


def _learner_batch(pipeline, module, episodes):
    spec = RLModuleSpec(
        module_class=A2CTorchRLModule,
        observation_space=OBS,
        action_space=ACT,
        model_config=module.model_config,
    )
    multi = MultiRLModuleSpec(rl_module_specs={DEFAULT_MODULE_ID: spec}).build()
    multi[DEFAULT_MODULE_ID].load_state_dict(module.state_dict())
    batch = pipeline(rl_module=multi, batch={}, episodes=episodes, metrics=None)
    return {k: np.asarray(v) for k, v in batch[DEFAULT_MODULE_ID].items() if k != "infos"}


def _our_pipeline(gamma, lambda_):
    config = A2CConfig().training(gamma=gamma, lambda_=lambda_)
    pipeline = config.build_learner_connector(OBS, ACT)
    pipeline.prepend(GeneralizedAdvantages(gamma=gamma, lambda_=lambda_))
    return pipeline


def test_connector_bootstraps_per_chunk_as_the_episode_ended():
    """Three chunks, V(s) = s[0]: terminated (no bootstrap), truncated by a time limit and cut
    by the rollout length (both bootstrap with V(s_T))."""
    module = _module(value_is_first_obs_entry=True)
    gamma, lam = 0.9, 1.0
    episodes = [
        _episode([0.5, 0.4, 0.3, 9.0], [1, 1, 1], terminated=True),
        _episode([0.5, 0.4, 0.3, 2.0], [1, 1, 1], truncated=True),
        _episode([0.5, 0.4, 0.3, 2.0], [1, 1, 1]),  # cut: neither terminated nor truncated
    ]
    batch = _learner_batch(_our_pipeline(gamma, lam), module, episodes)
    expected_adv = np.concatenate([[2.21, 1.5, 0.7], [3.668, 3.12, 2.5], [3.668, 3.12, 2.5]])
    np.testing.assert_allclose(batch[ADVANTAGES], expected_adv, rtol=1e-5)
    np.testing.assert_allclose(batch[VALUE_TARGETS], expected_adv + [0.5, 0.4, 0.3] * 3, rtol=1e-5)
    assert batch[Columns.OBS].shape == (9, 4)  # one row per real step, none artificial


@pytest.mark.parametrize("lambda_", [1.0, 0.95, 0.5])
def test_parity_with_rllib_gae_connector_on_random_episodes(lambda_):
    """RLlib's PPO pipeline: AddOneTsToEpisodesAndTruncate + GeneralAdvantageEstimation, which
    appends an artificial step per chunk (masked out by LOSS_MASK) and standardizes the
    advantages over all rows, artificial ones included. Compare the value targets, and the
    raw advantages targets - V(s), on the real steps."""
    gamma = 0.99
    module = _module(value_is_first_obs_entry=False, seed=3)

    def random_episodes():
        rng_local = np.random.default_rng(7)
        out = []
        for i in range(8):
            n = int(rng_local.integers(1, 12))
            out.append(
                _episode(
                    rng_local.normal(size=n + 1),
                    rng_local.normal(size=n),
                    terminated=i % 3 == 0,
                    truncated=i % 3 == 1,
                    rng=rng_local,
                )
            )
        return out

    ours = _learner_batch(_our_pipeline(gamma, lambda_), module, random_episodes())

    ppo = PPOConfig().training(gamma=gamma, lambda_=lambda_)
    theirs_pipeline = ppo.build_learner_connector(OBS, ACT)
    theirs_pipeline.prepend(AddOneTsToEpisodesAndTruncate())
    theirs_pipeline.append(GeneralAdvantageEstimation(gamma=gamma, lambda_=lambda_))
    theirs = _learner_batch(theirs_pipeline, module, random_episodes())
    real = theirs[Columns.LOSS_MASK].astype(bool)
    assert real.sum() == len(ours[ADVANTAGES]) and (~real).sum() == 8

    np.testing.assert_allclose(ours[Columns.OBS], theirs[Columns.OBS][real])
    np.testing.assert_allclose(
        ours[VALUE_TARGETS], theirs[VALUE_TARGETS][real], rtol=1e-4, atol=1e-5
    )
    with torch.no_grad():
        values = module.compute_values({Columns.OBS: torch.as_tensor(ours[Columns.OBS])}).numpy()
    np.testing.assert_allclose(
        ours[ADVANTAGES], theirs[VALUE_TARGETS][real] - values, rtol=1e-4, atol=1e-5
    )


# --- the Learner's own batch: straight from the chunks' arrays --------------------------------


def _mixed_chunks(seed: int, count: int = 9):
    """Chunks of 1-11 steps that terminate, truncate or are cut, in random order."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n, end = int(rng.integers(1, 12)), int(rng.integers(3))
        out.append(_episode(rng.normal(size=n + 1), rng.normal(size=n), terminated=end == 0,
                            truncated=end == 1, rng=rng))  # fmt: skip
    return out


@pytest.mark.parametrize("lambda_", [1.0, 0.9, 0.0])
def test_advantage_batch_equals_the_connector_pipeline(lambda_):
    """``advantage_batch`` (one padded pass over all chunks) gives the rows, observations,
    actions, advantages and value targets of ``GeneralizedAdvantages`` in RLlib's pipeline."""
    module = _module(value_is_first_obs_entry=False, seed=5)
    for seed in range(3):
        chunks = _mixed_chunks(seed)
        ref = _learner_batch(_our_pipeline(0.97, lambda_), module, chunks)
        fast = advantage_batch(module, chunks, gamma=0.97, lambda_=lambda_)
        for key in (Columns.OBS, Columns.ACTIONS, ADVANTAGES, VALUE_TARGETS):
            np.testing.assert_allclose(fast[key], ref[key], rtol=1e-6, atol=1e-7, err_msg=key)
        assert fast[ADVANTAGES].dtype == np.float32 and len(fast[ADVANTAGES]) == len(
            ref[ADVANTAGES]
        )


@pytest.mark.parametrize("lambda_", [1.0, 0.9, 0.0])
def test_advantage_batch_is_gae_advantages_row_by_row_bit_for_bit(lambda_):
    """The Learner's batch holds, chunk after chunk, exactly what ``gae_advantages`` gives for
    that chunk alone (V(s_T) = 0 where it terminated, else its last observation's value):
    unequal lengths, terminated, truncated and cut ends, the same float64 operations."""
    module = _module(value_is_first_obs_entry=False, seed=5)
    chunks = _mixed_chunks(4, count=12)
    ends = {(bool(c.is_terminated), bool(c.is_truncated)) for c in chunks}
    assert ends == {(True, False), (False, True), (False, False)}
    assert len({len(c) for c in chunks}) > 3
    fast = advantage_batch(module, chunks, gamma=0.97, lambda_=lambda_)
    start = 0
    # V of every chunk's s_0..s_T from one forward over all of them, as both paths take it
    per_chunk = GeneralizedAdvantages.values_per_chunk(module, chunks)
    for chunk, values in zip(chunks, per_chunk, strict=True):
        adv, target = gae_advantages(
            chunk.get_rewards(),
            values[:-1],
            bootstrap_value=0.0 if chunk.is_terminated else float(values[-1]),
            gamma=0.97,
            lambda_=lambda_,
        )
        rows = slice(start, start + len(chunk))
        assert np.array_equal(fast[ADVANTAGES][rows], adv)
        assert np.array_equal(fast[VALUE_TARGETS][rows], target)
        start += len(chunk)
    assert start == len(fast[ADVANTAGES])


def test_batched_gae_ignores_what_lies_past_each_rows_end():
    """``gae_advantages_batch``: each row its own piece of trajectory, whatever the padding
    holds; the 1-D ``gae_advantages`` is its one-row case."""
    rng = np.random.default_rng(2)
    lengths = np.array([5, 1, 8, 3])
    rewards, values = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    bootstrap = np.array([0.0, 1.5, -0.7, 2.0])
    adv, target = gae_advantages_batch(
        rewards, values, bootstrap_C=bootstrap, lengths_C=lengths, gamma=0.9, lambda_=0.8
    )
    for c, n in enumerate(lengths):
        one = gae_advantages(
            rewards[c, :n], values[c, :n], bootstrap_value=bootstrap[c], gamma=0.9, lambda_=0.8
        )
        assert np.array_equal(adv[c, :n], one[0]) and np.array_equal(target[c, :n], one[1])
        assert not adv[c, n:].any() and not target[c, n:].any()


def test_learner_update_from_arrays_equals_the_pipeline_update():
    """One A2C Learner update from the arrays and one through RLlib's connector pipeline
    (``batch_from_arrays = False``) move the weights to the same values."""
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    states = []
    for from_arrays in (True, False):
        config = A2CConfig().training(gamma=0.97, lambda_=0.9).debugging(seed=0)
        learner = config.build_learner(spaces={DEFAULT_MODULE_ID: (OBS, ACT)})
        learner.batch_from_arrays = from_arrays
        learner.update(episodes=_mixed_chunks(11), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0})
        states.append(learner.module[DEFAULT_MODULE_ID].state_dict())
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=1e-6, atol=1e-7)
