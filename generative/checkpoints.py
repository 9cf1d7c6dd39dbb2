"""Generative checkpoints: Ray Train's ``<run>/ray_train/train/checkpoint_<date>_<time>/``,
each holding ``state.pt`` (weights, optimizer, epoch, the model's JSON-able config and image
shape), found by runkit's one rule, and loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from generative.configure import Job, load_job
from runkit.checkpoints import latest_checkpoint
from runkit.errors import UserError

STATE_FILE = "state.pt"
TRAIN_DIR = "ray_train"
RUN_NAME = "train"
PATTERN = f"{TRAIN_DIR}/{RUN_NAME}/checkpoint_*"
KEEP_CHECKPOINTS = 2


def find_checkpoint(path: Path | str) -> Path:
    """A checkpoint directory (holding state.pt) or a run directory's newest checkpoint."""
    return latest_checkpoint(path, marker=STATE_FILE, pattern=PATTERN, kind="generative")


def load_model(path: Path | str) -> tuple[Job, Any, torch.nn.Module]:
    """The Job, config and model (in eval mode) of a checkpoint or a run's newest one."""
    ckpt = find_checkpoint(path)
    try:
        state = torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")
        job = load_job(state["model_name"])
        cfg = job.config_class(**state["config"])
        model = job.build_model(cfg, tuple(state["shape"]))
        model.load_state_dict(state["model"])
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad checkpoint
        raise UserError(f"checkpoint {ckpt}: cannot be loaded ({type(exc).__name__})") from None
    model.eval()
    return job, cfg, model
