"""Actor and critic for A2C: a policy head and a value head over a shared torso, or two
separate torsos; the Nature CNN for stacked uint8 frames (scaled to [0, 1] here), an MLP for
vector observations.

Discrete actions: categorical logits. Box actions: a Gaussian with a state-dependent mean and a
learned, state-independent log standard deviation (``TorchDiagGaussian`` reads [mean, log_std]).
The value head (and its torso, when separate) is Learner-only: the EnvRunners hold the
inference-only copy.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from algorithms.common.frame_encoder import image_torso
from algorithms.common.networks import (
    acting_forward,
    dist_inputs,
    mlp_torso,
    policy_output,
    uses_cnn,
)


class A2CTorchRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """model_config: ``torso`` (auto|cnn|mlp), ``hiddens``, ``activation`` (tanh|relu, MLP
    only), ``shared_torso`` (bool), ``initial_log_std`` (Box actions only), and ``encoder`` /
    ``encoder_mode`` (another job's encoder as the image torso: ``frame_encoder.image_torso``)."""

    # RLlib types these Optional; the spec that builds this module always sets them, and
    # ``get_default_rl_module_spec`` passes a plain dict as the model config.
    observation_space: gym.Space
    action_space: gym.Space
    model_config: dict[str, Any]

    def setup(self) -> None:
        cfg = self.model_config
        obs_shape = self.observation_space.shape
        assert obs_shape is not None, self.observation_space
        shape = tuple(obs_shape)
        self.image = uses_cnn(cfg.get("torso", "auto"), shape)
        hiddens = list(cfg.get("hiddens", [64, 64]))
        activation = cfg.get("activation", "tanh")

        def torso() -> tuple[nn.Module, int]:
            if self.image:  # the Nature CNN, or another job's encoder (``encoder``)
                return image_torso(shape, cfg)
            return mlp_torso(int(np.prod(shape)), hiddens, activation)

        out_dim, self.log_std = policy_output(self.action_space, cfg.get("initial_log_std", 0.0))
        self.shared = bool(cfg.get("shared_torso", False))
        self.pi_torso, width = torso()
        self.pi_head = nn.Linear(width, out_dim)
        # Small last layer: a near-uniform (or unit-variance, zero-mean) starting policy.
        nn.init.orthogonal_(self.pi_head.weight, gain=0.01)
        nn.init.zeros_(self.pi_head.bias)
        self.vf_torso: nn.Module | None = None
        self.vf_head: nn.Linear | None = None
        if not self.inference_only:
            if not self.shared:
                self.vf_torso, width = torso()
            self.vf_head = nn.Linear(width, 1)
            nn.init.orthogonal_(self.vf_head.weight, gain=1.0)
            nn.init.zeros_(self.vf_head.bias)

    def _features_input(self, batch: dict[str, Any]) -> torch.Tensor:
        obs = batch[Columns.OBS]
        if self.image:
            return obs.float() / 255.0  # uint8 frames -> [0, 1], (B, C, 84, 84)
        return obs.float().reshape(obs.shape[0], -1)  # (B, obs_dim)

    def _dist_inputs(self, features_BF: torch.Tensor) -> torch.Tensor:
        return dist_inputs(self.pi_head(features_BF), self.log_std)

    def _value(self, x: torch.Tensor, pi_features: torch.Tensor | None) -> torch.Tensor:
        if self.vf_head is None:
            raise RuntimeError("this module is inference-only: it has no value head")
        if self.vf_torso is not None:
            features = self.vf_torso(x)
        else:
            features = pi_features if pi_features is not None else self.pi_torso(x)
        return self.vf_head(features).squeeze(-1)  # (B,)

    # No dropout or batch norm: acting needs no eval()/train() switch around each call; and it
    # needs no autograd graph (RLlib's EnvRunner calls these without no_grad; rlgen's under
    # inference mode already).
    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._acting(batch)

    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._acting(batch)

    def _acting(self, batch: dict[str, Any]) -> dict[str, Any]:
        if torch.is_inference_mode_enabled():
            return self._forward(batch)
        with torch.no_grad():
            return self._forward(batch)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features = acting_forward(self.pi_torso, self._features_input(batch))
        head = acting_forward(self.pi_head, features)
        return {Columns.ACTION_DIST_INPUTS: dist_inputs(head, self.log_std)}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        x = self._features_input(batch)
        features = self.pi_torso(x)
        return {
            Columns.ACTION_DIST_INPUTS: self._dist_inputs(features),
            Columns.VF_PREDS: self._value(x, features),
        }

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self._value(self._features_input(batch), None)

    def get_non_inference_attributes(self) -> list[str]:
        return ["vf_torso", "vf_head"]
