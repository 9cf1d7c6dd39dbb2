"""A Learner steps with the learning rate its config asks for, also right after a restore.

RLlib restores a Learner's optimizers with ``optimizer.load_state_dict``, whose param groups
carry the learning rate of the run that saved them; the configured rate comes back only after
the next update. A checkpoint restored under a new config (``--resume --set lr=...``, or a
Population Based Training exploit: the better trial's checkpoint with a perturbed lr) would take
its first step with the old rate. ``ConfiguredLearningRate`` puts the configured rate back as
soon as the optimizer state is loaded (a fixed rate; a schedule is applied by RLlib after the
next update, as before), and logs the rate every step really uses.
"""

from __future__ import annotations

from typing import Any

from algorithms.common import metrics as M
from algorithms.rllib_compat import (
    OptimizerStateHook,
    optimizer_learning_rates,
    restore_fixed_learning_rates,
)


class ConfiguredLearningRate(OptimizerStateHook):
    """Learner mixin, before ``TorchLearner`` in the bases."""

    metrics: Any

    def optimizer_state_loaded(self) -> None:
        restore_fixed_learning_rates(self)

    def apply_gradients(self, gradients_dict: dict) -> None:
        for module_id, lr in optimizer_learning_rates(self).items():
            self.metrics.log_value((module_id, M.LEARNING_RATE), lr, window=1)
        super().apply_gradients(gradients_dict)  # type: ignore[misc]
