"""Network bodies shared by every algorithm's RLModule: the Nature CNN for stacked uint8 frames
and MLPs for vector observations."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
_AS_FUNCTIONS = {nn.Tanh: torch.tanh, nn.ReLU: torch.relu}


def uses_cnn(torso: str, obs_shape: tuple[int, ...]) -> bool:
    """The image torso (the Nature CNN, or another job's encoder) or an MLP: ``auto`` picks the
    image torso for (C, H, W) observations and the MLP for everything else."""
    return torso == "cnn" or (torso == "auto" and len(obs_shape) == 3)


def nature_cnn(in_channels: int) -> tuple[nn.Module, int]:
    """Mnih et al. 2015: three convolutions and a 512-unit layer, for (C, 84, 84) inputs
    already scaled to [0, 1]. Returns the torso and its output width."""
    torso = nn.Sequential(
        nn.Conv2d(in_channels, 32, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 512),
        nn.ReLU(),
    )
    return torso, 512


def mlp_layers(in_dim: int, hiddens: list[int], activation: str) -> tuple[list[nn.Module], int]:
    """Linear + activation per hidden width; returns the layers and the last width."""
    layers: list[nn.Module] = []
    for width in hiddens:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    return layers, in_dim


def mlp_torso(in_dim: int, hiddens: list[int], activation: str = "relu") -> tuple[nn.Module, int]:
    """Hidden layers only (no output layer); returns the torso and its output width."""
    layers, width = mlp_layers(in_dim, hiddens, activation)
    return nn.Sequential(*layers), width


def mlp(in_dim: int, hiddens: list[int], out_dim: int, activation: str) -> nn.Sequential:
    """Hidden layers and a linear output layer (the last element)."""
    layers, width = mlp_layers(in_dim, hiddens, activation)
    return nn.Sequential(*layers, nn.Linear(width, out_dim))


def acting_forward(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` for acting (no autograd, no hooks): the Linear and activation layers of a
    Sequential as the functional calls their ``forward`` makes (the same ops, the same
    numbers), without ``nn.Module``'s call machinery around each one: on CPU that machinery
    is about a third of a small MLP's forward over a rollout actor's few envs."""
    children = layers if isinstance(layers, nn.Sequential) else (layers,)
    for layer in children:
        kind = type(layer)
        if isinstance(layer, nn.Linear) and kind is nn.Linear:
            x = F.linear(x, layer.weight, layer.bias)
        elif kind in _AS_FUNCTIONS:
            x = _AS_FUNCTIONS[kind](x)
        else:
            x = layer(x)
    return x


def policy_output(action_space: Any, initial_log_std: float) -> tuple[int, nn.Parameter | None]:
    """Width of a policy head and, for Box actions, the learned state-independent log std:
    Discrete(n) -> (n logits, None); Box(d) -> (d means, a d-vector parameter)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n), None
    if isinstance(action_space, gym.spaces.Box):
        width = int(np.prod(action_space.shape))
        return width, nn.Parameter(torch.full((width,), float(initial_log_std)))
    raise ValueError(f"unsupported action space {action_space}")


def dist_inputs(head_out_BA: torch.Tensor, log_std: torch.Tensor | None) -> torch.Tensor:
    """RLlib's action-distribution inputs: logits as they are, or [mean, log_std] for the
    diagonal Gaussian (``TorchDiagGaussian``), (B, 2 * act_dim)."""
    if log_std is None:
        return head_out_BA
    return torch.cat([head_out_BA, log_std.expand_as(head_out_BA)], dim=-1)


def one_thread_for_small_nets(device: Any, observation_space: gym.Space) -> None:
    """On CPU, run MLPs over vector observations on one intra-op thread: their forward and
    backward passes are too short to gain from more, and on a busy machine the extra threads
    cost several times the work (bench/a2c.py measured 4.5x fewer A2C steps/s with 2 threads
    while another job ran). Image observations keep torch's default."""
    if torch.device(device).type == "cpu" and len(observation_space.shape or ()) < 3:
        torch.set_num_threads(1)
