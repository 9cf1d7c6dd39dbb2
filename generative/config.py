"""Config dataclasses for the generative jobs, filled from ``--config`` / ``--set`` keys.

Each model's config subclasses ``GenConfig`` and adds its own fields and checks; an unknown
key, a wrong type or a value out of range is a UserError naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

from generative.data.images import BINARIZE
from runkit.checks import check_choice, check_range
from runkit.errors import UserError

MAX_GRID = 1024  # images in one grid: grid_n and ``rlgen sample --n``
MAX_WIDTH = 4096  # units or feature maps of any one layer
MAX_LAYERS = 64  # layers (blocks) of a network
MAX_IW_SAMPLES = 10_000  # importance samples per test image
# The size keys of the model configs (a key a model does not have is skipped): a config from
# --set or from a checkpoint someone else wrote is refused before a network is built.
SIZE_LIMITS = {
    "hidden": MAX_WIDTH,
    "latent_dim": MAX_WIDTH,
    "features": MAX_WIDTH,
    "output_features": MAX_WIDTH,
    "layers": MAX_LAYERS,
    "iw_samples": MAX_IW_SAMPLES,
}


def shown(value: Any) -> str:
    """A value (or an odd key) for a one-line message: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def shown_name(name: Any) -> str:
    """A key or file name for a one-line message: as it is when printable and short."""
    return name if isinstance(name, str) and name.isprintable() and len(name) <= 60 else shown(name)


@dataclasses.dataclass
class GenConfig:
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 20
    binarize: str = "dynamic"  # none | threshold | dynamic (resampled every epoch)
    grid_n: int = 64  # images in the sample / completion grids
    max_nonfinite_steps: int = 20  # NaN/inf steps are skipped; this many in a row end the run

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
        check_range("lr", self.lr, low=0.0, low_open=True)
        check_range("batch_size", self.batch_size, low=1, integer=True)
        check_range("epochs", self.epochs, low=1, integer=True)
        check_range("grid_n", self.grid_n, low=1, high=MAX_GRID, integer=True)
        check_range("max_nonfinite_steps", self.max_nonfinite_steps, low=1, integer=True)
        check_choice("binarize", self.binarize, BINARIZE)
        for key, high in SIZE_LIMITS.items():
            if hasattr(self, key):
                check_range(key, getattr(self, key), low=1, high=high, integer=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
