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
    ``guard_nonfinite`` before RLlib clips and applies it, and a non-finite one is not applied
    at all (a zero gradient would still move the weights through Adam's or RMSprop's state).
    ``max_nonfinite_updates`` of them in a row set the sticky ``nonfinite_abort`` metric,
    which ends the run (the run loop reads it)."""

    metrics: Any
    config: Any
    _skip_step = False
    _grad_norm: torch.Tensor | None = None
    _nonfinite_streak = 0
    _nonfinite_abort = False

    def compute_gradients(self, loss_per_module: dict, **kwargs: Any) -> dict:
        grads = super().compute_gradients(loss_per_module, **kwargs)  # type: ignore[misc]
        self._grad_norm = norm = guard_nonfinite(grads, self.metrics)
        self._skip_step = norm is not None and not bool(torch.isfinite(norm))
        self._nonfinite_streak = self._nonfinite_streak + 1 if self._skip_step else 0
        if self._nonfinite_streak >= self.config.max_nonfinite_updates:
            self._nonfinite_abort = True
        self.metrics.log_value(M.NONFINITE_ABORT, float(self._nonfinite_abort), window=1)
        return grads

    def apply_gradients(self, gradients_dict: dict) -> None:
        if not self._skip_step:
            super().apply_gradients(gradients_dict)  # type: ignore[misc]
