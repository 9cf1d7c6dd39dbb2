"""Learner connector piece: Monte-Carlo returns per time step of complete episodes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core import DEFAULT_MODULE_ID

from algorithms.common import returns as mc

RETURNS = "mc_returns"


class MonteCarloReturns(ConnectorV2):
    """Adds the column ``mc_returns``: G_t for every step of every episode in the batch.

    ``reward_to_go=False`` gives every step the whole-episode return (the lecture's plain
    estimator). Terminated episodes end their return at the last reward. Truncated episodes
    bootstrap with V(s_T) when ``bootstrap_truncated`` (the Learner sets it only where the
    module has a value head; under DDP the module is unwrapped first).
    """

    def __init__(
        self,
        input_observation_space: Any = None,
        input_action_space: Any = None,
        *,
        gamma: float,
        reward_to_go: bool,
        bootstrap_truncated: bool,
    ) -> None:
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.reward_to_go = reward_to_go
        self.bootstrap_truncated = bootstrap_truncated

    def _bootstrap_values(self, rl_module: Any, episodes: list[Any]) -> dict[str, float]:
        """V(s_T) of the last observation of each truncated episode, one batched forward."""
        truncated = [e for e in episodes if e.is_truncated and not e.is_terminated]
        if not (self.bootstrap_truncated and truncated):
            return {}
        module = rl_module[DEFAULT_MODULE_ID].unwrapped()  # the module inside a DDP wrapper
        last_obs = np.stack([np.asarray(e.get_observations(-1)) for e in truncated])
        device = next(module.parameters()).device
        with torch.no_grad():
            values = module.compute_values({"obs": torch.as_tensor(last_obs, device=device)})
        return {e.id_: float(v) for e, v in zip(truncated, values.cpu().numpy(), strict=True)}

    def __call__(
        self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], **kwargs: Any
    ):
        single = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        bootstrap = self._bootstrap_values(rl_module, single)
        for episode in single:
            returns = mc.episode_returns(
                episode.get_rewards(),
                gamma=self.gamma,
                reward_to_go=self.reward_to_go,
                bootstrap_value=bootstrap.get(episode.id_, 0.0),
            )
            self.add_n_batch_items(
                batch=batch,
                column=RETURNS,
                items_to_add=returns,
                num_items=len(episode),
                single_agent_episode=episode,
            )
        return batch
