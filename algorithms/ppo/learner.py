"""PPO Learner: A2C's batch plus the sampling policy's log-probabilities and values, then
epochs of shuffled minibatches, one guarded, clipped gradient step each (math: ``losses.py``)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from algorithms.a2c.connectors import (
    ADVANTAGES,
    OLD_LOGP,
    OLD_VALUES,
    VALUE_TARGETS,
)
from algorithms.a2c.learner import A2CTorchLearner
from algorithms.common import metrics as M
from algorithms.common import pg_losses
from algorithms.common.data_parallel import gather_objects, rank
from algorithms.common.schedules import scalar_or_schedule
from algorithms.ppo import losses
from algorithms.rllib_compat import device_of

COLUMNS = (Columns.OBS, Columns.ACTIONS, ADVANTAGES, VALUE_TARGETS, OLD_LOGP, OLD_VALUES)


def global_rows(shards: list[list[tuple[str, int]]], mine: int) -> tuple[np.ndarray, int]:
    """Shard ``mine``'s rows' places in the whole batch, and its size. ``shards`` holds every
    Learner's chunks as (key, length) in its batch order; the whole batch orders the chunks by
    key (unique per chunk), so it is the same however the chunks were sharded."""
    everything = sorted(chunk for shard in shards for chunk in shard)
    starts, total = {}, 0
    for key, length in everything:
        starts[key] = total
        total += length
    own = [np.arange(starts[k], starts[k] + n) for k, n in shards[mine]]
    return (np.concatenate(own) if own else np.zeros(0, np.int64)), total


def chunk_key(episode: Any) -> str:
    """A key of an episode chunk that is the same in every run of the same seed (RLlib's
    episode ids are random): where the chunk starts in its episode, its length, and a digest
    of its first observation and its actions. Chunks sorted by key give the whole batch one
    order, whatever the order they arrived in or the Learners they were sharded to."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(np.ascontiguousarray(episode.get_observations(0)).tobytes())
    digest.update(np.ascontiguousarray(episode.get_actions()).tobytes())
    return f"{episode.t_started:012d}/{len(episode):06d}/{digest.hexdigest()}"


class PPOTorchLearner(A2CTorchLearner):
    def build(self) -> None:
        super().build()
        self.clip_param = scalar_or_schedule(self.config.clip_param, 0)
        self._env_steps = 0  # the lifetime env-step count at this update (seeds its shuffles)
        self._chunks: list[tuple[str, int]] = []  # this Learner's (key, length), batch order
        self.minibatch_kl = 0.0
        self.epochs_done = 0  # of the last batch (fewer than num_epochs after a KL stop)
        self._last_step: Any = None  # the last step's loss terms and statistics, for logging

    def batch_from_episodes(self, training_data: Any) -> Any:
        """A2C's batch with ``old_logp`` and ``old_values`` (``advantage_batch``)."""
        episodes = [e for e in (training_data.episodes or []) if len(e) > 0]
        if not episodes:
            return None
        self._chunks = [(chunk_key(e), len(e)) for e in episodes]
        return self.advantage_train_batch(episodes, old_policy=True)

    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        self._env_steps = int(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0) or 0)
        self.clip_param = scalar_or_schedule(self.config.clip_param, self._env_steps)

    def _update(self, batch: dict[str, Any], **kwargs: Any) -> tuple[Any, Any, Any]:
        """The batch's ``num_epochs`` epochs of minibatches, one RLlib update step each
        (``TorchLearner._update``: forward, loss, the guarded gradient, the optimizer step).
        Every Learner takes the same number of steps (DDP averages each one): the plan comes
        from the whole batch, and the KL early stop from statistics of the whole batch."""
        columns = batch[DEFAULT_MODULE_ID]
        rows, total = global_rows(gather_objects(self._chunks), rank())
        config = self.config
        plan = losses.minibatch_rows(
            rows,
            num_rows=total,
            num_minibatches=max(1, round(total / config.minibatch_size)),
            num_epochs=config.num_epochs,
            seed=[int(config.seed or 0), self._env_steps],
        )
        device = device_of(self)
        result: tuple[Any, Any, Any] = ({}, {}, {})
        epochs_done, epoch_kl = 0, 0.0
        for parts in plan:
            kl = []
            for part in parts:
                index = torch.as_tensor(part, device=device)
                minibatch = {k: columns[k][index] for k in COLUMNS}
                result = super()._update({DEFAULT_MODULE_ID: minibatch}, **kwargs)
                kl.append(self.minibatch_kl)
            epochs_done, epoch_kl = epochs_done + 1, float(np.mean(kl))
            if config.kl_target is not None and epoch_kl > config.kl_target:
                break
        self.epochs_done = epochs_done
        self._log_last_step(epoch_kl)
        return result

    def _log_last_step(self, epoch_kl: float) -> None:
        """The update's figures: the last minibatch's loss terms and statistics (logged once
        per update, not after every step: RLlib keeps window-1 values only), the last epoch's
        mean KL, the epochs taken and the clip used."""
        terms, stats, values_B, raw_adv_B = self._last_step
        self.metrics.log_dict(
            {
                M.POLICY_LOSS: terms.policy_loss,
                M.VALUE_LOSS: terms.value_loss,
                M.ENTROPY: terms.entropy,
                M.ENTROPY_COEFF: self.entropy_coeff,
                M.CLIP_FRACTION: terms.clip_fraction,
                M.BASELINE_MEAN: stats.mean(values_B),
                M.ADVANTAGE_STD: stats.std(raw_adv_B),
                M.APPROX_KL: epoch_kl,
                M.EPOCHS_DONE: self.epochs_done,
                M.CLIP_PARAM: self.clip_param,
            },
            key=DEFAULT_MODULE_ID,
            window=1,
        )

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict):
        logp_B, entropy_B, values_B, raw_adv_B, stats = self.step_terms(module_id, batch, fwd_out)
        terms = losses.ppo_loss(
            logp_B=logp_B,
            old_logp_B=batch[OLD_LOGP],
            advantages_B=pg_losses.normalize_advantages(
                raw_adv_B, config.advantage_normalization, batch_mean=stats.mean
            ),
            entropy_B=entropy_B,
            values_B=values_B,
            old_values_B=batch[OLD_VALUES],
            returns_B=batch[VALUE_TARGETS],
            clip=self.clip_param,
            vf_clip=config.vf_clip_param,
            vf_coeff=config.vf_coeff,
            entropy_coeff=self.entropy_coeff,
            mean=stats.share_of_mean,
            stat_mean=stats.mean,
        )
        self.minibatch_kl = float(terms.approx_kl)
        self._last_step = (terms, stats, values_B.detach(), raw_adv_B)
        return terms.total
