"""Tier 1: advantage normalization (none | scale | centre_and_scale) by hand, the degenerate
batch of equal advantages through the real REINFORCE and A2C Learners, which mode ``auto``
picks for each baseline, and A2C's round when lost rollout actors left fewer chunks than
Learners."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from algorithms.a2c.algorithm import A2C, A2CConfig
from algorithms.a2c.connectors import ADVANTAGES, VALUE_TARGETS
from algorithms.common import pg_losses as losses
from algorithms.reinforce.algorithm import BASELINES, ReinforceConfig
from algorithms.reinforce.connectors import RETURNS

S = 14**0.5  # sqrt(14)

# (mode, advantages, expected), the arithmetic in the comments:
NORMALIZATION_CASES = [
    # rms([1, 2, 3, 6]) = sqrt((1 + 4 + 9 + 36) / 4) = sqrt(12.5); never centred
    ("scale", [1.0, 2.0, 3.0, 6.0], [x / 12.5**0.5 for x in (1, 2, 3, 6)]),
    # mean 3, deviations [-2, -1, 0, 3], std = sqrt((4 + 1 + 0 + 9) / 4) = sqrt(14) / 2
    ("centre_and_scale", [1.0, 2.0, 3.0, 6.0], [-4 / S, -2 / S, 0.0, 6 / S]),
    ("none", [1.0, 2.0, 3.0, 6.0], [1.0, 2.0, 3.0, 6.0]),
    # Equal advantages (std 0): +-1 when scaled by rms = |A|, exactly 0 when centred.
    ("scale", [7.0] * 5, [1.0] * 5),
    ("scale", [-0.3] * 3, [-1.0] * 3),
    ("centre_and_scale", [0.1] * 3, [0.0] * 3),  # 0.1 is not exact in binary: still 0
    ("centre_and_scale", [476.3] * 8, [0.0] * 8),
    ("scale", [0.0] * 4, [0.0] * 4),
    ("centre_and_scale", [0.0] * 4, [0.0] * 4),
    # One step: rms = |A|; centred, nothing is left.
    ("scale", [-2.5], [-1.0]),
    ("centre_and_scale", [-2.5], [0.0]),
]


@pytest.mark.parametrize("mode,advantages,expected", NORMALIZATION_CASES)
def test_normalize_advantages_by_hand(mode, advantages, expected):
    out = losses.normalize_advantages(torch.tensor(advantages), mode)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-6, atol=0.0)


def test_normalization_functions_take_the_batch_statistics_given():
    # The statistics come from the whole batch (over every Learner), not from the tensor passed.
    adv = torch.tensor([2.0, -4.0])
    torch.testing.assert_close(losses.scale_advantages(adv, rms=2.0), torch.tensor([1.0, -2.0]))
    torch.testing.assert_close(
        losses.centre_and_scale_advantages(adv, mean=1.0, std=0.5), torch.tensor([2.0, -10.0])
    )
    # batch_mean stands for the all-reduced mean: (x^2).mean of a larger batch, here 4 * 4.
    out = losses.normalize_advantages(adv, "scale", batch_mean=lambda x: 4 * x.mean())
    torch.testing.assert_close(out, adv / (4 * 10.0) ** 0.5)
    with pytest.raises(ValueError, match="advantage normalization"):
        losses.normalize_advantages(adv, "centre")


def _reinforce_update(baseline, normalization, returns, b=0.0):
    """The policy's gradient norm and the loss's advantages for one REINFORCE batch."""
    config = (
        ReinforceConfig()
        .environment("CartPole-v1")
        .training(baseline=baseline, advantage_normalization=normalization)
    )
    learner = config.build_learner(env=gym.make("CartPole-v1"))
    learner.set_moving_average_baseline(b)
    rng = np.random.default_rng(0)
    n = len(returns)
    batch = {
        Columns.OBS: torch.as_tensor(rng.normal(size=(n, 4)), dtype=torch.float32),
        Columns.ACTIONS: torch.as_tensor(rng.integers(0, 2, size=n)),
        RETURNS: returns,
    }
    module = learner.module[DEFAULT_MODULE_ID]
    module.zero_grad()
    loss = learner.compute_loss_for_module(
        module_id=DEFAULT_MODULE_ID, config=config, batch=batch, fwd_out=module.forward_train(batch)
    )
    loss.backward()
    grads = [p.grad for p in module.pi.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


# Every episode cut by the time limit, whole-episode returns (reward_to_go=false): equal G.
EQUAL_RETURN = 500 * [99.3429]


@pytest.mark.parametrize(
    "baseline,normalization,expect",
    [
        ("moving_average", "scale", "bounded"),  # A = G - b = const: +-1 after scaling
        ("none", "scale", "bounded"),
        ("batch_mean", "scale", "zero"),  # G - mean(G) = 0 exactly
        ("moving_average", "centre_and_scale", "zero"),
        ("value", "centre_and_scale", "bounded"),  # V(s) differs per state
    ],
)
def test_reinforce_batch_of_equal_returns_gives_a_bounded_step(baseline, normalization, expect):
    """The batch std is 0 here; dividing by it multiplied the step by ~1e8."""
    norm = _reinforce_update(baseline, normalization, torch.tensor(EQUAL_RETURN), b=20.0)
    if expect == "zero":
        assert norm == 0.0
    else:
        # log pi of a near-uniform policy, weighted by |A| <= a few: a gradient of order 1.
        assert 1e-4 < norm < 10.0


def test_a2c_batch_of_equal_advantages_gives_a_bounded_step():
    config = A2CConfig().training(advantage_normalization="scale").debugging(seed=0)
    spaces = {DEFAULT_MODULE_ID: (gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))}
    learner = config.build_learner(spaces=spaces)
    module = learner.module[DEFAULT_MODULE_ID]
    batch = {
        Columns.OBS: torch.zeros(16, 4),
        Columns.ACTIONS: torch.zeros(16, dtype=torch.int64),
        ADVANTAGES: torch.full((16,), 0.37),
        VALUE_TARGETS: torch.zeros(16),
    }
    loss = learner.compute_loss_for_module(
        module_id=DEFAULT_MODULE_ID, config=config, batch=batch, fwd_out=module.forward_train(batch)
    )
    loss.backward()
    grads = [
        p.grad for n, p in module.named_parameters() if n.startswith("pi") and p.grad is not None
    ]
    assert 1e-4 < float(torch.nn.utils.get_total_norm(grads)) < 10.0


@pytest.mark.parametrize("baseline", BASELINES)
def test_auto_normalization_centres_only_after_the_value_baseline(baseline):
    config = ReinforceConfig().training(baseline=baseline)
    assert config.advantage_normalization == "auto"
    expected = "centre_and_scale" if baseline == "value" else "scale"
    assert config.normalization() == expected
    explicit = ReinforceConfig().training(baseline=baseline, advantage_normalization="none")
    assert explicit.normalization() == "none"


@pytest.mark.parametrize("config_cls", [ReinforceConfig, A2CConfig])
def test_unknown_normalization_is_refused_by_name(config_cls):
    config = config_cls().environment("CartPole-v1").training(advantage_normalization="centre")
    with pytest.raises(ValueError, match="advantage_normalization='centre' is not one of"):
        config.validate()


class _Rounds:
    """A2C's sampling as seen by ``_sample_for_learners``: each call returns the next round's
    chunks (as lost rollout actors would leave them) and one metrics dict."""

    def __init__(self, num_learners: int, rounds: list[list[str]]) -> None:
        self.config = SimpleNamespace(num_learners=num_learners)
        self.rounds = list(rounds)
        self.calls = 0

    def _sample(self):
        self.calls += 1
        return list(self.rounds.pop(0)), [{"round": self.calls}]


@pytest.mark.parametrize(
    "num_learners,rounds,expected_chunks,expected_calls",
    [
        (0, [["a"]], ["a"], 1),  # one local Learner: any round will do
        (1, [["a"]], ["a"], 1),
        (2, [["a", "b", "c"]], ["a", "b", "c"], 1),
        (2, [["a"], ["b"]], ["a", "b"], 2),  # an actor lost: one more round
        (3, [["a"], ["b"], ["c", "d"]], ["a", "b", "c", "d"], 3),
    ],
)
def test_a2c_samples_again_when_fewer_chunks_than_learners(
    num_learners, rounds, expected_chunks, expected_calls
):
    algo = _Rounds(num_learners, rounds)
    episodes, metrics = A2C._sample_for_learners(algo)
    assert episodes == expected_chunks
    assert algo.calls == expected_calls and len(metrics) == expected_calls


def test_centred_std_is_taken_from_the_deviations():
    # mean 1e9, deviations +-1, std 1: E[A^2] - E[A]^2 = (1e18 + 1) - 1e18 is lost in float64.
    adv = torch.tensor([1e9 + 1, 1e9 - 1], dtype=torch.float64)
    out = losses.normalize_advantages(adv, "centre_and_scale")
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0], dtype=torch.float64))
