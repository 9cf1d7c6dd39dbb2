"""Config dataclasses for the generative jobs, filled from ``--config`` / ``--set`` keys.

Each model's config subclasses ``GenConfig`` and adds its own fields and checks; an unknown
key, a wrong type or a value out of range is a UserError naming the key. The dataclasses are
frozen: a config is built and checked once (``from_overrides``) and never changed after, so
what was checked is what trains (setting a field raises ``dataclasses.FrozenInstanceError``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, ClassVar

from generative.data.images import BINARIZE
from runkit.checks import Rule, check_rules, choice, integer, number
from runkit.errors import UserError

MAX_GRID = 1024  # images in one grid: grid_n and ``rlgen sample --n``
MAX_WIDTH = 4096  # units or feature maps of any one layer
MAX_LAYERS = 64  # layers (blocks) of a network
MAX_IW_SAMPLES = 10_000  # importance samples per test image


def shown(value: Any) -> str:
    """A value (or an odd key) for a one-line message: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def shown_name(name: Any) -> str:
    """A key or file name for a one-line message: as it is when printable and short."""
    return name if isinstance(name, str) and name.isprintable() and len(name) <= 60 else shown(name)


@dataclasses.dataclass(frozen=True)
class GenConfig:
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 20
    binarize: str = "dynamic"  # none | threshold | dynamic (resampled every epoch)
    grid_n: int = 64  # images in the sample / completion grids
    max_nonfinite_steps: int = 20  # NaN/inf steps are skipped; this many in a row end the run

    # Each key's rule, checked by ``validate()`` and by the light key tables
    # (``runkit.keytable``); the size keys are bounded, so a config from --set or from a
    # checkpoint someone else wrote is refused before a network is built.
    RULES: ClassVar[dict[str, Rule]] = {
        "lr": number(0.0, low_open=True),
        "batch_size": integer(1),
        "epochs": integer(1),
        "grid_n": integer(1, MAX_GRID),
        "max_nonfinite_steps": integer(1),
        "binarize": choice(*BINARIZE),
    }
    KEY_DOCS: ClassVar[dict[str, str]] = {
        "lr": "Adam's learning rate.",
        "batch_size": "images per gradient step, per Train worker.",
        "epochs": "passes over the training images.",
        "binarize": "none (8-bit pixels), threshold, or dynamic (resampled every epoch).",
        "grid_n": "images in the sample and completion grids.",
        "max_nonfinite_steps": "non-finite steps are skipped; this many in a row end the run.",
    }

    @classmethod
    def from_overrides(
        cls, model: str, overrides: dict[str, Any], *, where: str = "--set"
    ) -> GenConfig:
        """The checked config; ``where`` names the source in messages (``--set``, or a
        checkpoint's config)."""
        if not isinstance(overrides, dict):
            raise UserError(f"{where}: {type(overrides).__name__}, not a mapping of keys")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            if not isinstance(key, str):
                raise UserError(f"{where} {shown(key)}: config keys are strings")
            if key not in fields:
                key = shown_name(key)
                close = difflib.get_close_matches(key, sorted(fields), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UserError(f"{where} {key}: unknown {model} config key{hint}")
            default = fields[key].default
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float))
                and not isinstance(default, bool)
                and not isinstance(value, (int, float))
            ):
                raise UserError(f"{where} {key}={shown(value)}: must be like {default!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{where} {key}={shown(value)}: must be a finite number")
            if isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, float) and not value.is_integer():
                    raise UserError(f"{where} {key}={shown(value)}: must be an integer")
                value = int(value)
            if isinstance(default, str) and not isinstance(value, str):
                raise UserError(f"{where} {key}={shown(value)}: must be a string")
            values[key] = value
        config = cls(**values)
        try:
            config.validate()
        except ValueError as exc:
            raise UserError(str(exc) if where == "--set" else f"{where}: {exc}") from None
        return config

    def validate(self) -> None:
        check_rules(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def precheck(model: str, overrides: dict[str, Any], table: dict[str, Any]) -> None:
    """The model's config checks (``from_overrides``), run before torch or Ray is imported: the
    config classes import neither, so the light key table only names the class."""
    import importlib

    module, _, name = table["config"].partition(":")
    getattr(importlib.import_module(module), name).from_overrides(model, overrides)
