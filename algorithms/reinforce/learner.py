"""REINFORCE Learner: batch -> returns -> losses -> metrics (math: ``common/pg_losses.py``)."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from algorithms.common import metrics as M
from algorithms.common import pg_losses as losses
from algorithms.common.data_parallel import BatchStats
from algorithms.common.gradients import NonFiniteGuard
from algorithms.common.networks import one_thread_for_small_nets
from algorithms.common.optim import ConfiguredLearningRate
from algorithms.reinforce.connectors import RETURNS, MonteCarloReturns
from algorithms.rllib_compat import device_of, learner_connector


class ReinforceTorchLearner(ConfiguredLearningRate, NonFiniteGuard, TorchLearner):
    # The ReinforceConfig (RLlib types it as AlgorithmConfig, without this algorithm's fields).
    # Any: importing it here would be an import cycle, as its module imports this one.
    config: Any

    def build(self) -> None:
        super().build()
        obs_space = self.module[DEFAULT_MODULE_ID].observation_space
        assert obs_space is not None
        one_thread_for_small_nets(device_of(self), obs_space)
        # Set by the Algorithm before every update when baseline == "moving_average", so all
        # Learners subtract the same constant.
        self.moving_average_baseline = 0.0
        if self.config.add_default_connectors_to_learner_pipeline:
            pipeline = learner_connector(self)
            assert pipeline is not None
            pipeline.prepend(
                MonteCarloReturns(
                    gamma=self.config.gamma,
                    reward_to_go=self.config.reward_to_go,
                    # V(s_T) exists only with the value baseline.
                    bootstrap_truncated=self.config.bootstrap_truncated
                    and self.config.baseline == "value",
                )
            )

    def set_moving_average_baseline(self, value: float) -> None:
        self.moving_average_baseline = float(value)

    def _baseline(
        self, config: Any, returns_B: torch.Tensor, fwd_out: dict, stats: BatchStats
    ) -> torch.Tensor:
        """b(s_t) for every step, by ``config.baseline`` (the one place it is decided)."""
        if config.baseline == "value":
            return fwd_out[Columns.VF_PREDS]
        if config.baseline == "moving_average":
            return torch.full_like(returns_B, self.moving_average_baseline)
        if config.baseline == "batch_mean":
            # The mean in float64: equal returns give b equal to each of them, so G - b = 0
            # exactly (a float32 sum would leave rounding noise, which scaling would inflate).
            return torch.full_like(returns_B, float(stats.mean(returns_B.double())))
        return torch.zeros_like(returns_B)

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict):
        module = self.module[module_id].unwrapped()
        logp_B, entropy_B = losses.logp_and_entropy(
            module.get_train_action_dist_cls(),
            fwd_out[Columns.ACTION_DIST_INPUTS],
            batch[Columns.ACTIONS],
        )
        returns_B = batch[RETURNS]
        # Means and statistics over the whole batch, however many Learners share it.
        stats = BatchStats(len(returns_B), returns_B.device)
        baseline_B = self._baseline(config, returns_B, fwd_out, stats)
        value_loss = torch.zeros((), device=returns_B.device)
        if config.baseline == "value":
            value_loss = losses.value_loss(
                values_B=baseline_B, returns_B=returns_B, mean=stats.share_of_mean
            )
        adv_B = losses.advantages(returns_B=returns_B, baseline_B=baseline_B)
        total, policy_loss, entropy = losses.policy_gradient_objective(
            logp_B=logp_B,
            entropy_B=entropy_B,
            advantages_B=losses.normalize_advantages(
                adv_B, config.normalization(), batch_mean=stats.mean
            ),
            value_loss=value_loss,
            vf_coeff=config.vf_coeff,
            entropy_coeff=config.entropy_coeff,
            mean=stats.share_of_mean,
        )
        self.metrics.log_dict(
            {
                M.POLICY_LOSS: policy_loss.detach(),
                M.VALUE_LOSS: value_loss.detach(),
                M.ENTROPY: entropy.detach(),
                M.BASELINE_MEAN: stats.mean(baseline_B),
                M.ADVANTAGE_STD: stats.std(adv_B),
            },
            key=module_id,
            window=1,
        )
        return total
