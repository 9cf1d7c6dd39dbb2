"""RL checkpoints: ``<run>/checkpoints/iter_<iteration>/``, RLlib's own checkpoint of the
Algorithm, ``policy_weights.pt`` (the policy's tensors alone) and ``rlgen_state.json`` (the run
spec and the run loop's counters). Written under a temporary name and renamed when whole; the
newest two are kept. Found by runkit's one rule.

RLlib's part is pickled (classes and constructors included), so it is only ever restored from
the run's own directory (``--resume``). ``rlgen eval`` and the end-of-run video read
``policy_weights.pt`` with ``torch.load(weights_only=True)`` into a module rebuilt from the run
spec in ``rlgen_state.json``: a checkpoint handed to rlgen cannot run code.

``load_encoder``: a new run's weights that come from elsewhere (a VAE's encoder), put into the
built Algorithm; its checkpoints hold them from then on."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from runkit.checkpoints import latest_checkpoint
from runkit.errors import RunFailed, UserError
from runkit.paths import make_private_dirs, remove_entry
from runkit.rundir import write_json_atomic

STATE_FILE = "rlgen_state.json"
WEIGHTS_FILE = "policy_weights.pt"
MODULE_ID = "default_policy"
CHECKPOINTS = "checkpoints"
PATTERN = f"{CHECKPOINTS}/iter_*"
KEEP_CHECKPOINTS = 2
# Fault injection for the fault tests: with this variable naming a directory, a file
# ``pause-<checkpoint name>`` there (``pause-iter_000003``) stops that checkpoint's write half
# way (RLlib's part is in the temporary directory, rlgen's files are not): the file is renamed
# ``paused-<name>`` to say so, and the process waits there to be killed.
CHECKPOINT_FAULT_DIR_ENV = "RLGEN_CHECKPOINT_FAULT_DIR"
PAUSE_LIMIT_S = 600.0  # a pause nobody ends: the write goes on after this


def find_checkpoint(path: Path | str) -> Path:
    """A checkpoint directory, or a run directory's newest checkpoint."""
    return latest_checkpoint(path, marker=STATE_FILE, pattern=PATTERN, kind="RL")


def save_checkpoint(algo: Any, run_dir: Path, spec: Any, state: dict) -> Path:
    ckpt_root = run_dir / CHECKPOINTS
    make_private_dirs(ckpt_root)
    target = ckpt_root / f"iter_{state['iteration']:06d}"
    tmp = ckpt_root / f".tmp_{target.name}"
    for partial in ckpt_root.glob(".tmp_*"):  # this one, or one a killed run left behind
        remove_entry(partial)  # a symlink is unlinked, never followed
    try:
        make_private_dirs(tmp)
        algo.save_to_path(os.path.abspath(tmp))
        _pause_if_armed(target.name)
        save_policy_weights(algo, tmp / WEIGHTS_FILE)
        write_json_atomic(tmp / STATE_FILE, {"spec": dataclasses.asdict(spec), "state": state})
    except OSError as exc:  # a full disk or quota: give the space back, keep the last one
        remove_entry(tmp)
        raise write_failed(exc, target, run_dir) from None
    remove_entry(target)
    tmp.rename(target)
    for old in sorted(ckpt_root.glob("iter_*"))[:-KEEP_CHECKPOINTS]:
        remove_entry(old)
    return target


def _pause_if_armed(name: str) -> None:
    root = os.environ.get(CHECKPOINT_FAULT_DIR_ENV)
    if not root:
        return
    try:
        Path(root, f"pause-{name}").rename(Path(root, f"paused-{name}"))
    except FileNotFoundError:
        return
    time.sleep(PAUSE_LIMIT_S)


def write_failed(exc: OSError, target: Path, run_dir: Path) -> RunFailed:
    """The one line for a checkpoint that could not be written (no space, over quota)."""
    try:
        last = str(find_checkpoint(run_dir))
    except UserError:
        last = "none yet"
    reason = exc.strerror or type(exc).__name__
    return RunFailed(
        f"checkpoint {target}: cannot be written ({reason}); the last checkpoint, {last}, is "
        "intact: free some space and continue with --resume"
    )


def save_policy_weights(algo: Any, path: Path) -> None:
    """The Learner's current policy module as a dict of tensors (nothing else to unpickle)."""
    import numpy as np
    import torch

    state = algo.learner_group.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
    torch.save({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}, path)


def load_encoder(algo: Any, weights: dict[str, Any] | None) -> None:
    """A new run's pretrained encoder weights (``encoder``) into every copy of its torso
    (the policy's and the value function's, the target network's) on the Learners, then
    synced to the rollout actors: the modules were built with fresh weights in their place."""
    if weights is None:
        return
    import numpy as np

    from algorithms.common.frame_encoder import ENCODER_PREFIX

    state = algo.learner_group.get_weights(module_ids=[MODULE_ID])[MODULE_ID]
    loaded = 0
    for key in state:
        name = key.partition(ENCODER_PREFIX)[2]
        if name in weights:
            state[key] = np.asarray(weights[name], dtype=np.float32)
            loaded += 1
    if not loaded or loaded % len(weights):
        raise RunFailed(f"the policy has {loaded} encoder weights for {len(weights)} exported")
    algo.learner_group.set_weights({MODULE_ID: state})
    algo.env_runner_group.sync_weights(
        from_worker_or_learner_group=algo.learner_group, inference_only=True, timeout_seconds=60
    )
