"""Config building from CLI input, without Ray: property-backed RLlib keys can be set."""

import pytest

from algorithms.configure import RLRunSpec, build_config
from runkit.errors import UserError


def test_property_backed_keys_are_settable():
    spec = RLRunSpec(
        algorithm="dqn", env="CartPole-v1", overrides={"train_batch_size_per_learner": 128}
    )
    assert build_config(spec).train_batch_size_per_learner == 128


def test_deprecated_keys_are_refused():
    spec = RLRunSpec(
        algorithm="reinforce", env="CartPole-v1", overrides={"custom_resources_per_worker": {}}
    )
    with pytest.raises(UserError, match="custom_resources_per_worker"):
        build_config(spec)
