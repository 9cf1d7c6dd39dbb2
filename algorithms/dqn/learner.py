"""DQN Learner: replay batch -> TD target -> Huber loss -> metrics; target-network updates."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from algorithms.common import metrics as M
from algorithms.common.gradients import guard_nonfinite
from algorithms.dqn import losses

TD_ERROR = "td_error_per_sample"
NEXT_OBS, RETURNS, DISCOUNT, WEIGHTS = "next_obs", "nstep_returns", "bootstrap_discount", "weights"


class DQNTorchLearner(TorchLearner):
    def build(self) -> None:
        super().build()
        self.num_updates = 0  # gradient steps (minibatches) taken
        self._updates_at_last_sync_check = 0

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict):
        self.num_updates += 1
        module = self.module[module_id].unwrapped()
        q_B = losses.q_taken(q_BA=fwd_out["q"], actions_B=batch[Columns.ACTIONS])
        with torch.no_grad():
            next_target_BA = module.q_values(batch[NEXT_OBS], target=True)
            if config.double_q:
                target_B = losses.double_q_target(
                    returns_B=batch[RETURNS],
                    discount_B=batch[DISCOUNT],
                    next_q_online_BA=module.q_values(batch[NEXT_OBS]),
                    next_q_target_BA=next_target_BA,
                )
            else:
                target_B = losses.td_target(
                    returns_B=batch[RETURNS],
                    discount_B=batch[DISCOUNT],
                    next_q_target_BA=next_target_BA,
                )
        loss = losses.huber_td_loss(
            q_B=q_B, target_B=target_B, weights_B=batch[WEIGHTS], delta=config.huber_delta
        )
        td_B = (q_B - target_B).detach()
        self.metrics.log_value((module_id, TD_ERROR), td_B, reduce="item_series")
        self.metrics.log_dict(
            {
                M.Q_MEAN: q_B.detach().mean(),
                M.TD_ERROR_ABS_MEAN: td_B.abs().mean(),
                M.TD_LOSS: loss.detach(),
            },
            key=module_id,
            window=1,
        )
        return loss

    def compute_gradients(self, loss_per_module: dict, **kwargs: Any) -> dict:
        grads = super().compute_gradients(loss_per_module, **kwargs)
        guard_nonfinite(grads, self.metrics)
        return grads

    def after_gradient_based_update(self, *, timesteps: dict) -> None:
        """Target-network updates, counted in gradient steps (one ``update`` call may take
        several minibatch steps): a hard copy each ``target_update_period`` steps, or Polyak
        averaging with ``tau`` per step, i.e. weight 1 - (1 - tau)^k after k steps."""
        super().after_gradient_based_update(timesteps=timesteps)
        before, self._updates_at_last_sync_check = (
            self._updates_at_last_sync_check,
            self.num_updates,
        )
        tau, period = self.config.tau, self.config.target_update_period
        if tau < 1.0:
            weight = 1.0 - (1.0 - tau) ** (self.num_updates - before)
        elif self.num_updates // period > before // period:
            weight = 1.0
        else:
            return
        for module_id in self.module.keys():
            self.module[module_id].unwrapped().sync_target(weight)
