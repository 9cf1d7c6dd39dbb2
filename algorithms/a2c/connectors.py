"""Advantages and value targets per time step of episode chunks: ``advantage_batch`` builds
the whole train batch straight from the chunks' arrays (what the A2C Learner uses), and
``GeneralizedAdvantages`` is the same computation as a piece of RLlib's learner connector
pipeline (kept as the reference the fast path is tested against)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from algorithms.common import returns as rt
from algorithms.common.pg_losses import logp_and_entropy

ADVANTAGES = Postprocessing.ADVANTAGES
VALUE_TARGETS = Postprocessing.VALUE_TARGETS


class GeneralizedAdvantages(ConnectorV2):
    """Adds the columns ``advantages`` and ``value_targets`` (GAE(lambda); lambda = 1 is the
    n-step estimator) to the train batch.

    Every chunk is a piece of one env's trajectory of T steps or fewer. Its observations
    s_0..s_T include the one after the last step, so one batched V forward over all chunks
    gives V(s_t) for every step and V(s_T) to bootstrap with: where the chunk was cut by the
    rollout length, or the episode truncated by a time limit, the return goes on past s_T;
    where the episode terminated, V(s_T) is 0.
    """

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        gamma: float,
        lambda_: float,
    ) -> None:
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.lambda_ = lambda_

    @staticmethod
    def values_of(module: Any, obs: np.ndarray) -> np.ndarray:
        """V(s) of every row of ``obs``, one forward pass, float32 on the CPU."""
        device = next(module.parameters()).device
        with torch.no_grad():
            values = module.compute_values({"obs": torch.as_tensor(obs, device=device)})
        return values.float().cpu().numpy()

    @classmethod
    def values_per_chunk(cls, module: Any, episodes: list[Any]) -> list[np.ndarray]:
        """V(s_0..s_T) of each chunk (length len+1), from one forward pass."""
        obs = [np.asarray(e.get_observations()) for e in episodes]
        flat = cls.values_of(module, np.concatenate(obs))
        return np.split(flat, np.cumsum([len(o) for o in obs])[:-1])

    def __call__(
        self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], **kwargs: Any
    ):
        single = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        if not single:
            return batch
        # Under DDP the Learner's module is a wrapper: V comes from the module inside it.
        values = self.values_per_chunk(rl_module[DEFAULT_MODULE_ID].unwrapped(), single)
        for episode, values_T1 in zip(single, values, strict=True):
            advantages, targets = rt.gae_advantages(
                episode.get_rewards(),
                values_T1[:-1],
                bootstrap_value=0.0 if episode.is_terminated else float(values_T1[-1]),
                gamma=self.gamma,
                lambda_=self.lambda_,
            )
            for column, items in ((ADVANTAGES, advantages), (VALUE_TARGETS, targets)):
                self.add_n_batch_items(
                    batch=batch,
                    column=column,
                    items_to_add=items,
                    num_items=len(episode),
                    single_agent_episode=episode,
                )
        return batch


OLD_LOGP = "old_logp"  # log pi_old(a_t|s_t), the sampling policy's (PPO)
OLD_VALUES = "old_values"  # V_old(s_t), the sampling critic's (PPO's value clipping)


def advantage_batch(
    module: Any, episodes: list[Any], *, gamma: float, lambda_: float, old_policy: bool = False
) -> dict[str, np.ndarray]:
    """The train batch of A2C from episode chunks, without the connector pipeline: one row per
    env step, chunk after chunk, with ``obs``, ``actions``, ``advantages`` and
    ``value_targets``; the same numbers as ``GeneralizedAdvantages`` after RLlib's default
    pieces (the same V forward over every chunk's observations s_0..s_T, the same equation:
    ``returns.gae_advantages_batch`` on all chunks at once, where the connector gives it one
    chunk at a time through ``returns.gae_advantages``).

    ``old_policy``: also ``old_logp`` and ``old_values``, the log-probability of each action
    and the value of each state under the module as it is (the weights that sampled the
    chunks, in a synchronous round), from the same one forward pass."""
    chunks = [e for e in episodes if len(e) > 0]
    lengths = np.array([len(e) for e in chunks], dtype=np.int64)
    obs = np.concatenate([np.asarray(e.get_observations()) for e in chunks])
    actions = np.concatenate([np.asarray(e.get_actions()) for e in chunks])
    if old_policy:
        dist_inputs, values32 = _policy_and_values(module, obs)
    else:
        values32 = GeneralizedAdvantages.values_of(module, obs)
    values = values32.astype(np.float64)
    width = int(lengths.max())
    real = np.arange(width)[None, :] < lengths[:, None]  # (C, T): step t of chunk c exists
    starts = np.cumsum(lengths + 1) - lengths - 1  # row of each chunk's s_0 in obs
    rows = (starts[:, None] + np.arange(width)[None, :])[real]  # s_t of every real step
    value_CT, rewards_CT = np.zeros(real.shape), np.zeros(real.shape)
    value_CT[real] = values[rows]
    rewards_CT[real] = np.concatenate([np.asarray(e.get_rewards(), np.float64) for e in chunks])
    terminated = np.array([bool(e.is_terminated) for e in chunks])
    advantages, targets = rt.gae_advantages_batch(
        rewards_CT,
        value_CT,
        # V(s_T): 0 where the episode terminated, else the bootstrap
        bootstrap_C=np.where(terminated, 0.0, values[starts + lengths]),
        lengths_C=lengths,
        gamma=gamma,
        lambda_=lambda_,
    )
    columns = {
        Columns.OBS: obs[rows],
        Columns.ACTIONS: actions,
        ADVANTAGES: advantages[real],
        VALUE_TARGETS: targets[real],
    }
    if old_policy:
        columns[OLD_VALUES] = values32[rows]
        columns[OLD_LOGP] = _log_probs(module, dist_inputs[torch.as_tensor(rows)], actions)
    return columns


def _policy_and_values(module: Any, obs: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The policy's distribution inputs (a tensor on the module's device) and V(s) (float32
    numpy) of every row of ``obs``, one training forward pass without a graph."""
    device = next(module.parameters()).device
    with torch.no_grad():
        out = module.forward_train({Columns.OBS: torch.as_tensor(obs, device=device)})
    return out[Columns.ACTION_DIST_INPUTS], out[Columns.VF_PREDS].float().cpu().numpy()


def _log_probs(module: Any, dist_inputs: torch.Tensor, actions: np.ndarray) -> np.ndarray:
    """log pi(a_t|s_t) of each action under ``dist_inputs`` (float32 numpy)."""
    with torch.no_grad():
        actions_t = torch.as_tensor(actions, device=dist_inputs.device)
        logp, _ = logp_and_entropy(module.get_train_action_dist_cls(), dist_inputs, actions_t)
    return logp.float().cpu().numpy()
