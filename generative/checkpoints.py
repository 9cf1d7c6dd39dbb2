"""Generative checkpoints: Ray Train's ``<run>/ray_train/train/checkpoint_<date>_<time>/``,
each holding ``state.pt`` (weights, optimizer, epoch, the model's JSON-able config and image
shape), found by runkit's one rule, and loaded with ``weights_only=True``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from generative.configure import Job, load_job
from runkit.checkpoints import is_checkpoint, latest_checkpoint
from runkit.errors import UserError, first_line

STATE_FILE = "state.pt"
TRAIN_DIR = "ray_train"
RUN_NAME = "train"
PATTERN = f"{TRAIN_DIR}/{RUN_NAME}/checkpoint_*"
KEEP_CHECKPOINTS = 2


SNAPSHOT = "checkpoint_manager_snapshot.json"


def registered_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint Ray Train registered last (the one a retry or ``--resume`` starts from),
    named in its snapshot file; None when there is no such file. A checkpoint directory whose
    report never reached Train's controller (its worker was lost right after writing it) can
    sort after this one by name, and may be cut short."""
    snapshot = Path(run_dir) / TRAIN_DIR / RUN_NAME / SNAPSHOT
    try:
        name = json.loads(snapshot.read_text())["latest_checkpoint_result"]["checkpoint_dir_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    found = snapshot.parent / str(name)
    return found if is_checkpoint(found, STATE_FILE) else None


def drop_unregistered_checkpoints(run_dir: Path) -> list[Path]:
    """Remove the checkpoint directories Ray Train never registered (a worker failed while
    writing or reporting them; on a full disk they hold the space a resume needs)."""
    snapshot = Path(run_dir) / TRAIN_DIR / RUN_NAME / SNAPSHOT
    try:
        results = json.loads(snapshot.read_text())["checkpoint_results"]
        registered = {str(r["checkpoint_dir_name"]) for r in results}
    except (OSError, ValueError, KeyError, TypeError):
        return []  # without Train's own list nothing is known to be unregistered
    dropped = [p for p in snapshot.parent.glob("checkpoint_*") if p.name not in registered]
    for path in dropped:
        shutil.rmtree(path, ignore_errors=True)
    return dropped


def find_checkpoint(path: Path | str) -> Path:
    """A checkpoint directory (holding state.pt), or for a run directory the checkpoint Ray
    Train registered last, else its newest by name."""
    registered = registered_checkpoint(Path(path))
    if registered is not None:
        return registered
    return latest_checkpoint(path, marker=STATE_FILE, pattern=PATTERN, kind="generative")


def read_state(ckpt: Path, *, verb: str = "loaded") -> dict[str, Any]:
    """``state.pt`` of a checkpoint (tensors and plain data only), or a UserError saying why
    it cannot be used."""
    try:
        state = torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad checkpoint
        raise UserError(
            f"checkpoint {ckpt}: cannot be {verb} ({type(exc).__name__}: {first_line(exc)[:160]})"
        ) from None
    if not isinstance(state, dict) or not {"model", "model_name", "epoch"} <= set(state):
        raise UserError(f"checkpoint {ckpt}: cannot be {verb} (not an rlgen model state)")
    return state


def load_model(path: Path | str) -> tuple[Job, Any, torch.nn.Module]:
    """The Job, config and model (in eval mode) of a checkpoint or a run's newest one."""
    ckpt = find_checkpoint(path)
    state = read_state(ckpt)
    try:
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
