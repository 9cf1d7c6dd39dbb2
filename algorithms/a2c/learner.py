"""A2C Learner: batch (with advantages) -> losses -> metrics (math: ``common/pg_losses.py``)."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from algorithms.a2c.connectors import (
    ADVANTAGES,
    VALUE_TARGETS,
    GeneralizedAdvantages,
    advantage_batch,
)
from algorithms.common import metrics as M
from algorithms.common import pg_losses as losses
from algorithms.common.data_parallel import BatchStats
from algorithms.common.gradients import NonFiniteGuard
from algorithms.common.networks import one_thread_for_small_nets
from algorithms.common.optim import ConfiguredLearningRate, register_optimizers
from algorithms.common.schedules import scalar_or_schedule
from algorithms.rllib_compat import (
    EpisodeBatchHook,
    custom_learner_connector,
    device_of,
    learner_connector,
)

# RMSprop as in Mnih et al. 2016 / the A2C baselines: decay 0.99, epsilon 1e-5.
RMSPROP_ALPHA = 0.99
RMSPROP_EPS = 1e-5


class A2CTorchLearner(EpisodeBatchHook, ConfiguredLearningRate, NonFiniteGuard, TorchLearner):
    # The A2CConfig (RLlib types it as AlgorithmConfig, without this algorithm's fields).
    # Any: importing it here would be an import cycle, as its module imports this one.
    config: Any
    # The train batch comes from ``advantage_batch`` (the chunks' arrays, one pass); False runs
    # RLlib's learner connector pipeline with ``GeneralizedAdvantages`` instead (the same
    # batch, several times slower: the tests compare the two).
    batch_from_arrays = True

    def build(self) -> None:
        super().build()
        obs_space = self.module[DEFAULT_MODULE_ID].observation_space
        assert obs_space is not None
        one_thread_for_small_nets(device_of(self), obs_space)
        self.entropy_coeff = scalar_or_schedule(self.config.entropy_coeff, 0)
        if self.config.add_default_connectors_to_learner_pipeline:
            pipeline = learner_connector(self)
            assert pipeline is not None
            pipeline.prepend(
                GeneralizedAdvantages(gamma=self.config.gamma, lambda_=self.config.lambda_)
            )

    def batch_from_episodes(self, training_data: Any) -> Any:
        """The train batch from the episodes' arrays (``advantage_batch``); None (RLlib's
        learner connector pipeline builds it) where a config adds its own learner connectors,
        or nothing was sampled."""
        episodes = training_data.episodes
        if not (
            self.batch_from_arrays
            and custom_learner_connector(self.config) is None
            and episodes
            and isinstance(episodes[0], SingleAgentEpisode)
            and any(len(e) for e in episodes)
        ):
            return None
        return self.advantage_train_batch(episodes)

    def advantage_train_batch(self, episodes: list, *, old_policy: bool = False) -> Any:
        """``advantage_batch``'s columns of ``episodes`` (with the sampling policy's
        log-probabilities and values where ``old_policy``) as the Learner's train batch."""
        module = self.module[DEFAULT_MODULE_ID].unwrapped()
        columns = advantage_batch(
            module, episodes, gamma=self.config.gamma, lambda_=self.config.lambda_,
            old_policy=old_policy,
        )  # fmt: skip
        tensors = {k: torch.from_numpy(v).to(device_of(self)) for k, v in columns.items()}
        steps = sum(len(e) for e in episodes)
        return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(tensors)}, env_steps=steps)

    def configure_optimizers_for_module(self, module_id: str, config: Any = None) -> None:
        def make(params: list) -> torch.optim.Optimizer:
            # foreach: one multi-tensor op per update term instead of a Python loop over the
            # parameters (torch picks it by itself on GPUs only); the same numbers on CPU.
            if config.optimizer == "rmsprop":
                return torch.optim.RMSprop(
                    params, alpha=RMSPROP_ALPHA, eps=RMSPROP_EPS, foreach=True
                )
            return torch.optim.Adam(params, foreach=True)

        # The lr (fixed or scheduled) is set and stepped by RLlib's scheduler.
        register_optimizers(self, module_id, config, make)

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        step = timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0) or 0
        self.entropy_coeff = scalar_or_schedule(self.config.entropy_coeff, step)

    def step_terms(self, module_id: str, batch: dict, fwd_out: dict) -> tuple:
        """What the loss of a step is made of: log pi(a|s) and the entropy per step, V(s), the
        advantages as the batch holds them, and ``BatchStats`` over the whole (mini)batch,
        however many Learners share it."""
        module = self.module[module_id].unwrapped()
        logp_B, entropy_B = losses.logp_and_entropy(
            module.get_train_action_dist_cls(),
            fwd_out[Columns.ACTION_DIST_INPUTS],
            batch[Columns.ACTIONS],
        )
        raw_adv_B = batch[ADVANTAGES]
        stats = BatchStats(len(raw_adv_B), raw_adv_B.device)
        return logp_B, entropy_B, fwd_out[Columns.VF_PREDS], raw_adv_B, stats

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict):
        logp_B, entropy_B, values_B, raw_adv_B, stats = self.step_terms(module_id, batch, fwd_out)
        value_loss = losses.value_loss(
            values_B=values_B, returns_B=batch[VALUE_TARGETS], mean=stats.share_of_mean
        )
        total, policy_loss, entropy = losses.policy_gradient_objective(
            logp_B=logp_B,
            entropy_B=entropy_B,
            advantages_B=losses.normalize_advantages(
                raw_adv_B, config.advantage_normalization, batch_mean=stats.mean
            ),
            value_loss=value_loss,
            vf_coeff=config.vf_coeff,
            entropy_coeff=self.entropy_coeff,
            mean=stats.share_of_mean,
        )
        self.metrics.log_dict(
            {
                M.POLICY_LOSS: policy_loss.detach(),
                M.VALUE_LOSS: value_loss.detach(),
                M.ENTROPY: entropy.detach(),
                M.ENTROPY_COEFF: self.entropy_coeff,
                M.BASELINE_MEAN: stats.mean(values_B),
                M.ADVANTAGE_STD: stats.std(raw_adv_B),
            },
            key=module_id,
            window=1,
        )
        return total
