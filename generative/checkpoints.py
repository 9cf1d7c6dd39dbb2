"""Generative checkpoints: Ray Train's ``<run>/ray_train/train/checkpoint_<date>_<time>/``,
each holding ``state.pt`` (weights, optimizer, epoch, the model's JSON-able config and image
shape), found by runkit's one rule.

A checkpoint may come from someone else: ``read_state`` bounds the file and its zip entries
before ``torch.load`` (``weights_only=True``), then checks every value against what the model
it names would be (built on the ``meta`` device, which allocates nothing) before any weight is
copied."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, NoReturn

import torch

from generative import MODELS
from generative.config import shown, shown_name
from generative.configure import Job, load_job
from generative.data.images import MAX_SIDE
from runkit.checkpoints import is_checkpoint, latest_checkpoint
from runkit.errors import UserError, first_line
from runkit.weights import BadWeights, check_torch_archive

STATE_FILE = "state.pt"
TRAIN_DIR = "ray_train"
RUN_NAME = "train"
PATTERN = f"{TRAIN_DIR}/{RUN_NAME}/checkpoint_*"
KEEP_CHECKPOINTS = 2
KEYS = ("model", "model_name", "epoch", "config", "shape")  # what every state.pt holds
MAX_PARAMETERS = 500_000_000  # weights of one model (2 GB in float32)
# state.pt: the weights, Adam's two moments of each, and room for the rest
MAX_STATE_BYTES = 3 * 4 * MAX_PARAMETERS + 64 * 2**20
MAX_PICKLE_BYTES = 16 * 2**20  # the pickle inside state.pt (its structure; tensors lie apart)


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


def _refuse(ckpt: Path, verb: str, why: str) -> NoReturn:
    raise UserError(f"checkpoint {ckpt}: cannot be {verb} ({why})")


def check_archive(ckpt: Path, *, verb: str = "loaded") -> None:
    """``state.pt`` as ``torch.save`` writes it (``runkit.weights.check_torch_archive``): at
    most MAX_STATE_BYTES on disk and unpacked, its entries stored, never compressed (a small
    file cannot inflate), the pickle at most MAX_PICKLE_BYTES."""
    try:
        check_torch_archive(
            ckpt / STATE_FILE, max_bytes=MAX_STATE_BYTES, max_pickle_bytes=MAX_PICKLE_BYTES
        )
    except BadWeights as exc:
        _refuse(ckpt, verb, f"{STATE_FILE} {exc}")


def _check_shape(ckpt: Path, verb: str, shape: Any) -> tuple[int, int, int]:
    ok = isinstance(shape, (list, tuple)) and len(shape) == 3
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
    if not ok or shape[0] not in (1, 3) or not all(1 <= v <= MAX_SIDE for v in shape[1:]):
        rule = f"[C, H, W] with C 1 or 3 and 1 <= H, W <= {MAX_SIDE}"
        _refuse(ckpt, verb, f"shape {shown(shape)}: must be {rule}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _check_weights(ckpt: Path, verb: str, weights: Any, skeleton: torch.nn.Module) -> None:
    """The state dict holds exactly the skeleton's entries, each a dense tensor of its shape
    with finite values."""
    expected = skeleton.state_dict()
    if not isinstance(weights, dict):
        _refuse(ckpt, verb, f"model weights are a {type(weights).__name__}, not a state dict")
    missing = [k for k in expected if k not in weights]
    extra = [shown_name(k) for k in weights if k not in expected]
    if missing or extra:
        listed = "; ".join(
            f"{what} {', '.join(names[:3])}"
            for what, names in (("missing", missing), ("unexpected", extra))
            if names
        )
        _refuse(ckpt, verb, f"weights are not this {skeleton.__class__.__name__}'s: {listed}")
    for key, want in expected.items():
        got = weights[key]
        if not torch.is_tensor(got) or got.layout != torch.strided:
            _refuse(ckpt, verb, f"weight {key} is not a dense tensor")
        if got.shape != want.shape:
            _refuse(ckpt, verb, f"weight {key} is {tuple(got.shape)}, not {tuple(want.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            _refuse(ckpt, verb, f"weight {key} holds NaN or infinite values")


def _check_optimizer(ckpt: Path, verb: str, optimizer: Any, skeleton: torch.nn.Module) -> None:
    """The optimizer state (what a resume gives Adam) is for the skeleton's parameters."""
    params = list(skeleton.parameters())
    entries, groups = (optimizer.get(k) for k in ("state", "param_groups"))
    if not isinstance(entries, dict) or not isinstance(groups, list):
        _refuse(ckpt, verb, "optimizer is not an optimizer state dict")
    ids = [i for g in groups if isinstance(g, dict) for i in g.get("params", ())]
    if ids != list(range(len(params))):
        _refuse(ckpt, verb, f"optimizer is for {len(ids)} parameters, the model has {len(params)}")
    for i, entry in entries.items():
        if not isinstance(i, int) or not 0 <= i < len(params) or not isinstance(entry, dict):
            _refuse(ckpt, verb, f"optimizer holds state for {shown(i)}, not a parameter")
        for name, value in entry.items():
            if torch.is_tensor(value) and value.dim() and value.shape != params[i].shape:
                _refuse(ckpt, verb, f"optimizer {shown(name)} of parameter {i} has another shape")


def check_state(ckpt: Path, state: Any, *, verb: str = "loaded") -> tuple[Job, Any]:
    """The Job and checked config of a loaded ``state.pt``: a known model_name, the config
    through the model's config class (the checks of a fresh run), the shape, the model's size
    (<= MAX_PARAMETERS, counted on a skeleton on the ``meta`` device) and the weights (and
    optimizer state) against the skeleton's names and shapes. Any problem: UserError."""
    if not isinstance(state, dict) or not set(KEYS) <= set(state):
        _refuse(ckpt, verb, "not an rlgen model state")
    name = state["model_name"]
    if not isinstance(name, str) or name not in MODELS:
        _refuse(ckpt, verb, f"model_name {shown(name)}: one of {', '.join(sorted(MODELS))}")
    epoch, elapsed = state["epoch"], state.get("elapsed_s", 0.0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        _refuse(ckpt, verb, f"epoch {shown(epoch)}: must be an integer >= 0")
    if not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed) or elapsed < 0:
        _refuse(ckpt, verb, f"elapsed_s {shown(elapsed)}: must be a finite number >= 0")
    shape = _check_shape(ckpt, verb, state["shape"])
    job = load_job(name)
    try:
        cfg = job.config_class.from_overrides(name, state["config"], where="config")
    except UserError as exc:
        _refuse(ckpt, verb, str(exc))
    try:
        with torch.device("meta"):  # names and shapes only: nothing is allocated
            skeleton = job.build_model(cfg, shape)
    except (ValueError, RuntimeError) as exc:
        _refuse(ckpt, verb, f"the {name} config does not fit shape {list(shape)}: {exc}")
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        _refuse(ckpt, verb, f"its {name} has {count} weights; at most {MAX_PARAMETERS}")
    _check_weights(ckpt, verb, state["model"], skeleton)
    if "optimizer" in state:
        optimizer = state["optimizer"]
        if not isinstance(optimizer, dict):
            _refuse(ckpt, verb, "optimizer is not an optimizer state dict")
        _check_optimizer(ckpt, verb, optimizer, skeleton)
    return job, cfg


def _load_checked(ckpt: Path, verb: str) -> tuple[dict[str, Any], Job, Any]:
    check_archive(ckpt, verb=verb)
    try:
        state = torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad checkpoint
        _refuse(ckpt, verb, f"{type(exc).__name__}: {first_line(exc)[:160]}")
    job, cfg = check_state(ckpt, state, verb=verb)
    return state, job, cfg


def read_state(ckpt: Path, *, verb: str = "loaded") -> dict[str, Any]:
    """``state.pt`` of a checkpoint (tensors and plain data only), checked through
    ``check_archive`` and ``check_state``, or a UserError saying why it cannot be used."""
    return _load_checked(Path(ckpt), verb)[0]


def load_model(path: Path | str) -> tuple[Job, Any, torch.nn.Module]:
    """The Job, config and model (in eval mode) of a checkpoint or a run's newest one."""
    ckpt = find_checkpoint(path)
    state, job, cfg = _load_checked(ckpt, "loaded")
    try:
        model = job.build_model(cfg, tuple(state["shape"]))
        model.load_state_dict(state["model"])
    except Exception as exc:  # noqa: BLE001 - checked above; any failure is a bad checkpoint
        _refuse(ckpt, "loaded", type(exc).__name__)
    model.eval()
    return job, cfg, model
