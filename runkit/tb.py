"""TensorBoard scalars with env steps (or epochs) as the x-axis."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class ScalarWriter:
    """A thin SummaryWriter wrapper that skips non-finite and non-numeric values.

    Reopening the same directory on ``--resume`` appends a new event file; curves continue at
    the step they stopped because the step is the run's own counter (env steps), not a count of
    writes.
    """

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(log_dir=str(self.logdir))

    def scalars(self, values: dict[str, Any], *, step: int) -> None:
        for tag, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self._writer.add_scalar(tag, float(value), global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
