"""A Learner steps with the learning rate its config asks for, also right after a restore.

RLlib restores a Learner's optimizers with ``optimizer.load_state_dict``, whose param groups
carry the learning rate of the run that saved them; the configured rate comes back only after
the next update. A checkpoint restored under a new config (``--resume --set lr=...``, or a
Population Based Training exploit: the better trial's checkpoint with a perturbed lr) would take
its first step with the old rate. ``ConfiguredLearningRate`` puts the configured rate back as
soon as the optimizer state is loaded (a fixed rate; a schedule is applied by RLlib after the
next update, as before), and logs the rate every step really uses.

``register_optimizers``: a module's optimizers, with a pretrained encoder (``encoder``) left
out (frozen) or stepped by an optimizer of its own at ``encoder_lr`` (finetune).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from algorithms.common import metrics as M
from algorithms.common.frame_encoder import encoder_parameters
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

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)  # type: ignore[misc]
        # RLlib's lr schedule sets each param group's rate to its scheduler's tensor (after
        # every update), which torch's multi-tensor (foreach) Adam refuses: the update's
        # steps take the same rate as a float.
        for module_id in self.module.keys():  # type: ignore[attr-defined]
            for _, optimizer in self.get_optimizers_for_module(module_id):  # type: ignore[attr-defined]
                for group in optimizer.param_groups:
                    if isinstance(group["lr"], torch.Tensor):
                        group["lr"] = float(group["lr"])

    def apply_gradients(self, gradients_dict: dict) -> None:
        for module_id, lr in optimizer_learning_rates(self).items():
            self.metrics.log_value((module_id, M.LEARNING_RATE), lr, window=1)
        super().apply_gradients(gradients_dict)  # type: ignore[misc]


ENCODER_OPTIMIZER = "encoder"


def register_optimizers(
    learner: Any,
    module_id: str,
    config: Any,
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
) -> None:
    """The module's optimizer (``make(params)``) over its parameters at ``lr``. With an encoder
    torso, only trainable parameters are registered: a frozen encoder's are in no optimizer
    (so no step can move them, and a checkpoint keeps them as they came); a fine-tuned one's
    are in a second optimizer, ``encoder``, at ``encoder_lr`` (None: ``lr``), so each moves at
    its own rate (one optimizer's param groups all get the rate RLlib's scheduler sets)."""
    module = learner.module[module_id]
    params = learner.get_parameters(module)
    if config.encoder is None:
        learner.register_optimizer(
            module_id=module_id, optimizer=make(params), params=params,
            lr_or_lr_schedule=config.lr,
        )  # fmt: skip
        return
    encoder = encoder_parameters(module)
    in_encoder = {id(p) for p in encoder}
    rest = [p for p in params if p.requires_grad and id(p) not in in_encoder]
    learner.register_optimizer(
        module_id=module_id, optimizer=make(rest), params=rest, lr_or_lr_schedule=config.lr
    )
    if encoder:
        lr = config.lr if config.encoder_lr is None else config.encoder_lr
        learner.register_optimizer(
            module_id=module_id, optimizer_name=ENCODER_OPTIMIZER, optimizer=make(encoder),
            params=encoder, lr_or_lr_schedule=lr,
        )  # fmt: skip
