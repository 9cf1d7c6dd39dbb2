"""Policy (and value) networks for REINFORCE: MLPs over the flattened observation.

Discrete actions: categorical logits. Box actions: a Gaussian with a state-dependent mean and a
learned, state-independent log standard deviation (``TorchDiagGaussian`` reads [mean, log_std]).
The value network is a separate MLP, built only when the Learner needs it (``value_head``) and
left out of the inference-only copies that the EnvRunners hold.
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

from algorithms.common.networks import acting_forward, dist_inputs, mlp, policy_output


class ReinforceTorchRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """model_config keys: ``hiddens`` (list of widths), ``activation`` (tanh|relu),
    ``value_head`` (bool), ``initial_log_std`` (Box actions only)."""

    # RLlib types these Optional; the spec that builds this module always sets them, and
    # ``get_default_rl_module_spec`` passes a plain dict as the model config.
    observation_space: gym.Space
    action_space: gym.Space
    model_config: dict[str, Any]

    def setup(self) -> None:
        cfg = self.model_config
        hiddens = list(cfg.get("hiddens", [64, 64]))
        activation = cfg.get("activation", "tanh")
        obs_shape = self.observation_space.shape
        assert obs_shape is not None, self.observation_space
        obs_dim = int(np.prod(obs_shape))
        out_dim, self.log_std = policy_output(self.action_space, cfg.get("initial_log_std", 0.0))
        self.pi = mlp(obs_dim, hiddens, out_dim, activation)
        # Small last layer: a near-uniform (or unit-variance, zero-mean) starting policy.
        last = self.pi[-1]
        assert isinstance(last, nn.Linear)
        nn.init.orthogonal_(last.weight, gain=0.01)
        nn.init.zeros_(last.bias)
        self.vf = None
        if cfg.get("value_head", False) and not self.inference_only:
            self.vf = mlp(obs_dim, hiddens, 1, activation)

    def _flat_obs(self, batch: dict[str, Any]) -> torch.Tensor:
        obs = batch[Columns.OBS].float()
        return obs.reshape(obs.shape[0], -1)  # (B, *obs_shape) -> (B, obs_dim)

    def _dist_inputs(self, obs_BD: torch.Tensor) -> torch.Tensor:
        return dist_inputs(self.pi(obs_BD), self.log_std)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits = acting_forward(self.pi, self._flat_obs(batch))  # acting only: no autograd
        return {Columns.ACTION_DIST_INPUTS: dist_inputs(logits, self.log_std)}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = self._flat_obs(batch)
        out = {Columns.ACTION_DIST_INPUTS: self._dist_inputs(obs)}
        if self.vf is not None:
            out[Columns.VF_PREDS] = self.vf(obs).squeeze(-1)
        return out

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        if self.vf is None:
            raise RuntimeError("this module was built without a value head")
        return self.vf(self._flat_obs(batch)).squeeze(-1)

    def get_non_inference_attributes(self) -> list[str]:
        return ["vf"]
