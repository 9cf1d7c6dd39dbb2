"""Q-networks: the Nature CNN for stacked uint8 frames (scaled to [0, 1] inside the module), an
MLP for vector observations; a plain or dueling Q head; a target copy on the Learner side.

Acting: greedy (inference) or epsilon-greedy (exploration), epsilon following a linear schedule
over the env steps that RLlib's EnvRunner passes in as ``t``.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from algorithms.common.frame_encoder import image_torso
from algorithms.common.networks import mlp_torso, uses_cnn
from algorithms.common.schedules import linear_schedule
from algorithms.dqn.losses import dueling_q


class QNetwork(nn.Module):
    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, cfg: dict) -> None:
        super().__init__()
        self.image = uses_cnn(cfg.get("torso", "auto"), obs_shape)
        if self.image:  # the Nature CNN, or another job's encoder (``encoder``)
            self.torso, width = image_torso(obs_shape, cfg)
        else:
            self.torso, width = mlp_torso(
                int(np.prod(obs_shape)), list(cfg.get("hiddens", [128, 128]))
            )
        self.dueling = bool(cfg.get("dueling", False))
        self.advantage = nn.Linear(width, num_actions)
        self.value = nn.Linear(width, 1) if self.dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.image:
            x = obs.float() / 255.0  # uint8 frames -> [0, 1], (B, C, 84, 84)
        else:
            x = obs.float().reshape(obs.shape[0], -1)  # (B, obs_dim)
        features = self.torso(x)
        if self.value is None:
            return self.advantage(features)  # (B, A)
        return dueling_q(value_B1=self.value(features), advantages_BA=self.advantage(features))


class DQNTorchRLModule(TorchRLModule, InferenceOnlyAPI):
    """model_config: ``torso`` (auto|cnn|mlp), ``hiddens``, ``dueling``,
    ``epsilon`` ([start, end, env steps]), and ``encoder`` / ``encoder_mode`` (another job's
    encoder as the image torso: ``frame_encoder.image_torso``)."""

    # RLlib types these Optional; the spec that builds this module always sets them
    # (``DQNConfig.check_spaces`` admits only Discrete actions), and
    # ``get_default_rl_module_spec`` passes a plain dict as the model config.
    observation_space: gym.Space
    action_space: gym.spaces.Discrete
    model_config: dict[str, Any]

    def setup(self) -> None:
        obs_shape = self.observation_space.shape
        assert obs_shape is not None, self.observation_space
        shape = tuple(obs_shape)
        self.q_net = QNetwork(shape, int(self.action_space.n), self.model_config)
        self.target_net = None
        if not self.inference_only:
            self.target_net = copy.deepcopy(self.q_net)
            self.target_net.requires_grad_(False)

    def q_values(self, obs: torch.Tensor, *, target: bool = False) -> torch.Tensor:
        net = self.target_net if target else self.q_net
        assert net is not None
        return net(obs)

    # The Q-network has no dropout or batch norm, so acting needs no eval()/train() switch
    # around each call (RLlib's default walks the module tree twice per env step).
    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_inference(batch, **kwargs)

    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._forward_exploration(batch, **kwargs)

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.inference_mode():
            return {Columns.ACTIONS: self.q_net(batch[Columns.OBS]).argmax(dim=1)}

    def _forward_exploration(self, batch: dict[str, Any], t: int = 0, **kwargs: Any) -> dict:
        start, end, steps = self.model_config.get("epsilon", [1.0, 0.05, 10_000])
        epsilon = linear_schedule(t, start=start, end=end, steps=steps)
        obs = batch[Columns.OBS]
        rows, device = obs.shape[0], obs.device
        explore = torch.rand(rows, device=device) < epsilon
        random = torch.randint(0, int(self.action_space.n), (rows,), device=device)
        if bool(explore.all()):  # every row acts at random: the Q-network is not needed
            return {Columns.ACTIONS: random}
        greedy = self._forward_inference(batch)[Columns.ACTIONS]
        return {Columns.ACTIONS: torch.where(explore, random, greedy)}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"q": self.q_net(batch[Columns.OBS])}

    def sync_target(self, tau: float) -> None:
        """theta_target <- tau * theta + (1 - tau) * theta_target (tau = 1: hard copy)."""
        assert self.target_net is not None
        with torch.no_grad():
            for tgt, src in zip(self.target_net.parameters(), self.q_net.parameters(), strict=True):
                tgt.lerp_(src, tau)

    def get_non_inference_attributes(self) -> list[str]:
        return ["target_net"]
