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


class ConfiguredLearningRate:
    """Learner mixin, before ``TorchLearner`` in the bases."""

    metrics: Any
    _module_optimizers: dict[str, list[str]]
    _named_optimizers: dict[str, Any]
    _optimizer_lr_schedules: dict[Any, Any]

    def _set_optimizer_state(self, state: Any) -> None:
        super()._set_optimizer_state(state)  # type: ignore[misc]
        for optimizer, schedule in self._optimizer_lr_schedules.items():
            if not schedule.use_schedule:
                for group in optimizer.param_groups:
                    group["lr"] = float(schedule.get_current_value())

    def apply_gradients(self, gradients_dict: dict) -> None:
        for module_id, names in self._module_optimizers.items():
            lr = self._named_optimizers[names[0]].param_groups[0]["lr"]
            self.metrics.log_value((module_id, M.LEARNING_RATE), float(lr), window=1)
        super().apply_gradients(gradients_dict)  # type: ignore[misc]
