"""The faults the fault tests inject into Ray Train workers (``tests/test_faults_kills.py``,
``tests/test_faults_values.py``), behind one hook that the worker loop calls at four named
points of an epoch. A real run's hook (``FAULT_DIR_ENV`` unset) does nothing at any of them.

The tests arm a fault by creating, in the directory ``FAULT_DIR_ENV`` names, a file named
``<kind>-rank<R>-epoch<E>-batch<B>``: at batch B (from 0) of epoch E (from 1) the worker of rank
R raises (``raise``), SIGKILLs its own process (``kill``), makes that step's loss NaN
(``nanloss``) or its weights NaN (``nanweights``), once: it claims the file first (renames it
``claimed-...``), so the retried job does not fire it again. A file named
``<kind>-rank<R>-epoch<E>-report`` (``raise`` or ``kill``) fires once epoch E is trained and
logged, before its checkpoint is reported: the retried job has no checkpoint of that epoch.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import torch

FAULT_DIR_ENV = "RLGEN_TRAIN_FAULT_DIR"


class NoFaults:
    """The hook of every real run: each point leaves the loop as it is."""

    def start_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (counted from 1) begins."""

    def before_step(self, batch_index: int, model: torch.nn.Module) -> None:
        """Batch ``batch_index`` (from 0) of the epoch is about to be drawn and stepped on."""

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The batch's loss, as the optimizer will see it."""
        return loss

    def before_report(self) -> None:
        """The epoch is trained and logged; its checkpoint is about to be reported."""


class FileFaults(NoFaults):
    """The faults armed in ``root`` for the worker of rank ``rank``."""

    def __init__(self, root: Path, rank: int) -> None:
        self.root, self.rank = root, rank
        self.armed: dict[int, Path] = {}  # batch index -> fault file, this epoch
        self.at_report: list[Path] = []  # this epoch's fault before its report
        self.nan_loss = False  # this step's loss is made NaN

    def start_epoch(self, epoch: int) -> None:
        found = self.root.glob(f"*-rank{self.rank}-epoch{epoch}-batch*")
        armed = [p for p in found if not p.name.startswith("claimed-")]
        self.armed = {int(p.name.rpartition("batch")[2]): p for p in armed}
        found = self.root.glob(f"*-rank{self.rank}-epoch{epoch}-report")
        self.at_report = [p for p in found if not p.name.startswith("claimed-")]

    def before_step(self, batch_index: int, model: torch.nn.Module) -> None:
        fault = self.armed.get(batch_index)
        kind = None if fault is None else _claim(fault)
        self.nan_loss = kind == "nanloss"
        if kind == "nanweights":
            with torch.no_grad():
                for p in model.parameters():
                    p.fill_(math.nan)

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * math.nan if self.nan_loss else loss

    def before_report(self) -> None:
        for fault in self.at_report:
            _claim(fault)


def _claim(fault: Path) -> str | None:
    """Claim ``fault`` and raise or kill here; ``nanloss`` and ``nanweights`` are returned for
    the hook to apply; None: it fired before (this is a retry)."""
    try:
        fault.rename(fault.with_name(f"claimed-{fault.name}"))
    except FileNotFoundError:
        return None
    kind = fault.name.split("-")[0]
    if kind in ("nanloss", "nanweights"):
        return kind
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"{fault.name}: injected worker failure")


def fault_hook(rank: int) -> NoFaults:
    """The hook for the worker of rank ``rank``: the armed faults' when the tests set
    ``FAULT_DIR_ENV``, else one that does nothing."""
    root = os.environ.get(FAULT_DIR_ENV)
    return FileFaults(Path(root), rank) if root else NoFaults()
