"""Learner connector piece: advantages and value targets per time step of episode chunks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.evaluation.postprocessing import Postprocessing

from algorithms.common import returns as rt

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
    def values_per_chunk(module: Any, episodes: list[Any]) -> list[np.ndarray]:
        """V(s_0..s_T) of each chunk (length len+1), from one forward pass."""
        obs = [np.asarray(e.get_observations()) for e in episodes]
        device = next(module.parameters()).device
        with torch.no_grad():
            values = module.compute_values(
                {"obs": torch.as_tensor(np.concatenate(obs), device=device)}
            )
        flat = values.float().cpu().numpy()
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
