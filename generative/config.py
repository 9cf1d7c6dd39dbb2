"""Config dataclasses for the generative jobs, filled from ``--config`` / ``--set`` keys.

Each model's config subclasses ``GenConfig`` and adds its own fields and checks; an unknown
key, a wrong type or a value out of range is a UserError naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from generative.data.images import BINARIZE
from runkit.checks import check_choice, check_range
from runkit.errors import UserError


@dataclasses.dataclass
class GenConfig:
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 20
    binarize: str = "dynamic"  # none | threshold | dynamic (resampled every epoch)
    grid_n: int = 64  # images in the sample / completion grids
    max_nonfinite_steps: int = 20  # NaN/inf steps are skipped; this many in a row end the run

    @classmethod
    def from_overrides(cls, model: str, overrides: dict[str, Any]) -> GenConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in fields:
                close = difflib.get_close_matches(key, sorted(fields), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UserError(f"--set {key}: unknown {model} config key{hint}")
            default = fields[key].default
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float))
                and not isinstance(default, bool)
                and not isinstance(value, (int, float))
            ):
                raise UserError(f"--set {key}={value!r}: must be like {default!r}")
            if isinstance(default, int) and not isinstance(default, bool):
                if isinstance(value, float) and not value.is_integer():
                    raise UserError(f"--set {key}={value!r}: must be an integer")
                value = int(value)
            if isinstance(default, str) and not isinstance(value, str):
                raise UserError(f"--set {key}={value!r}: must be a string")
            values[key] = value
        config = cls(**values)
        try:
            config.validate()
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return config

    def validate(self) -> None:
        check_range("lr", self.lr, low=0.0, low_open=True)
        check_range("batch_size", self.batch_size, low=1, integer=True)
        check_range("epochs", self.epochs, low=1, integer=True)
        check_range("grid_n", self.grid_n, low=1, high=1024, integer=True)
        check_range("max_nonfinite_steps", self.max_nonfinite_steps, low=1, integer=True)
        check_choice("binarize", self.binarize, BINARIZE)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
