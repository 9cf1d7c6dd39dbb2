"""Gradient guard shared by every Learner: measure the global norm, and never apply a
non-finite gradient (RLlib's own NaN skipping still steps the optimizer)."""

from __future__ import annotations

from typing import Any

import torch

from algorithms.common import metrics as M


def guard_nonfinite(grads: dict[Any, torch.Tensor | None], metrics: Any) -> torch.Tensor | None:
    """Zero a non-finite gradient; log and return the global L2 norm (None: no gradients)."""
    present = [g for g in grads.values() if g is not None]
    if not present:
        return None
    norm = torch.nn.utils.get_total_norm(present, foreach=True)
    finite = bool(torch.isfinite(norm))
    if not finite:
        for g in present:
            g.zero_()
    metrics.log_value(M.GRAD_NORM, norm.detach() if finite else float("nan"), window=1)
    metrics.log_value(M.NONFINITE_UPDATES, 0 if finite else 1, reduce="sum")
    return norm


class NonFiniteGuard:
    """Learner mixin (before ``TorchLearner`` in the bases): every gradient goes through
    ``guard_nonfinite`` before RLlib clips and applies it."""

    metrics: Any

    def compute_gradients(self, loss_per_module: dict, **kwargs: Any) -> dict:
        grads = super().compute_gradients(loss_per_module, **kwargs)  # type: ignore[misc]
        guard_nonfinite(grads, self.metrics)
        return grads
