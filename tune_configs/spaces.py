"""Typed search spaces for the experiments: every key is checked against the job's config class
when the experiment module is imported (an RLlib ``AlgorithmConfig`` subclass's settable keys,
a generative job's config dataclass fields), so a misspelled key fails at import instead of
being ignored an hour into a search."""

from __future__ import annotations

import dataclasses
from typing import Any

from tuning.experiment import check_keys


def rl_space(config_class: type, **space: Any) -> dict[str, Any]:
    """A search space over an RLlib config class (``ReinforceConfig``, ``A2CConfig``,
    ``DQNConfig``); an unknown key raises TypeError, as the config's fluent setters do."""
    from algorithms.configure import settable_keys

    check_keys(config_class.__name__, settable_keys(config_class()), space)
    return dict(space)


def gen_space(config_class: type, **space: Any) -> dict[str, Any]:
    """A search space over a generative job's config dataclass (``VAEConfig``,
    ``PixelCNNConfig``); an unknown key raises TypeError."""
    check_keys(config_class.__name__, {f.name for f in dataclasses.fields(config_class)}, space)
    return dict(space)
