"""TensorBoard scalars with env steps (or epochs) as the x-axis."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class ScalarWriter:
    """A thin SummaryWriter wrapper that skips non-finite and non-numeric values.

    Reopening the same directory on ``--resume`` appends a new event file; curves continue at
    the step they stopped because the step is the run's own counter (env steps), not a count of
    writes. ``resumed_at``: the step of the checkpoint the run continues from. A run that died
    after its last checkpoint had written later steps that it now writes again; TensorBoard
    hides the older file's steps after ``resumed_at`` (its restart marker, ``purge_step``), so
    no step shows twice.
    """

    def __init__(self, logdir: Path, *, resumed_at: int | None = None) -> None:
        self.logdir = Path(logdir)
        purge = None if resumed_at is None else resumed_at + 1
        self._writer = SummaryWriter(log_dir=str(self.logdir), purge_step=purge)

    def scalars(self, values: dict[str, Any], *, step: int) -> None:
        for tag, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self._writer.add_scalar(tag, float(value), global_step=step)

    def video(self, tag: str, frames: list[Any], *, step: int, fps: int) -> None:
        """(T, H, W, 3) uint8 frames as an animated GIF, which TensorBoard's Images tab plays
        (the encoding ``SummaryWriter.add_video`` would need moviepy for)."""
        import imageio.v2 as imageio
        from tensorboard.compat.proto.summary_pb2 import Summary

        buffer = io.BytesIO()
        imageio.mimsave(buffer, frames, format="GIF", duration=1000 / fps, loop=0)
        height, width = frames[0].shape[:2]
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue()
        )
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        self._writer._get_file_writer().add_summary(summary, global_step=step)

    def image(self, tag: str, image_HWC: Any, *, step: int) -> None:
        """One uint8 (H, W, C) image (an image grid) under TensorBoard's Images tab."""
        self._writer.add_image(tag, image_HWC, global_step=step, dataformats="HWC")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
