"""What a generative run was asked for (``GenRunSpec``), the ``Job`` a model plugs in as, and
the model's checked config.

A model is a ``Job`` (see ``generative/vae/train.py``): its config class, how to build the
network, the training loss of a batch, the test metrics, the image grids, and sampling. The
shared job code does the rest.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol

import torch

from generative import MODELS
from runkit.errors import UserError


class Job(Protocol):
    name: str
    config_class: Any

    def build_model(self, cfg: Any, shape: tuple[int, int, int]) -> torch.nn.Module: ...

    def loss(self, model: torch.nn.Module, x: torch.Tensor, cfg: Any) -> torch.Tensor: ...

    def evaluate(self, model: Any, x_test: torch.Tensor, cfg: Any) -> dict[str, float]: ...

    def grids(self, model: Any, x_test: torch.Tensor, cfg: Any) -> dict[str, torch.Tensor]: ...

    def sample(
        self, model: Any, n: int, cfg: Any, *, seed: int, sampler: str = "cached"
    ) -> torch.Tensor: ...

    def complete(
        self, model: Any, x: torch.Tensor, cfg: Any, *, seed: int, sampler: str = "cached"
    ) -> torch.Tensor:
        """Originals next to completions of their bottom halves; a model that cannot complete
        images raises UserError."""
        ...


@dataclasses.dataclass
class GenRunSpec:
    """Everything a generative run was asked for; saved as run.json for ``--resume``."""

    model: str
    dataset: str = "mnist5k"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_workers: int = 1
    use_gpu: str = "auto"  # auto | yes | no
    seed: int = 0
    max_failures: int = 2


def load_job(model: str) -> Job:
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}: one of {', '.join(sorted(MODELS))}")
    module, _, name = MODELS[model].partition(":")
    return getattr(importlib.import_module(module), name)()


def build_config(spec: GenRunSpec) -> Any:
    """The run's config, built and checked once, on the driver, before anything is written:
    every key and value of ``spec.overrides`` (a UserError naming the key). The config is
    frozen; the run hands this object on, and its ``to_dict()`` to the Train workers, which
    check it again on arrival (``received_config``)."""
    return load_job(spec.model).config_class.from_overrides(spec.model, spec.overrides)


def received_config(model: str, values: Any) -> Any:
    """A Train worker's config from the driver's checked dict (``build_config(...).to_dict()``),
    checked again with the same checks and messages: a dict changed on its way (a bad value, an
    unknown key) is refused before a network is built."""
    return load_job(model).config_class.from_overrides(model, values)


def unwrap(model: torch.nn.Module) -> Any:
    """The model inside Ray Train's DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
