"""A torso for stacked frames made of another job's encoder (``jobs.export("encoder", ...)``):
a VAE trained on single frames, applied to each frame of the stack with the same weights, its
means concatenated, then one 512-unit layer (the Nature CNN's width, so the Q or policy/value
heads on top are unchanged).

The encoder arrives as data: a list of layers by kind and size, arrays of weights, the input
transform, the image shape it was trained on. It may come from a file someone else made, so
every entry is checked (kinds among four, sizes bounded before anything is allocated, weights
of exactly the layers' shapes) and a problem is a ValueError of one line; nothing in it is
imported or run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

MAX_LAYERS = 32
MAX_WIDTH = 1 << 16  # channels or features of one layer
MAX_WEIGHTS = 1 << 25  # all of the encoder's weights (a conv VAE of 84x84 frames, 512 units: 14.5M)
FEATURES = 512
# Where an encoder's weights sit in a policy's state dict: ``<net>.torso.encoder.<name>`` or
# ``pi_torso.encoder.<name>`` (what ``image_torso`` builds goes in an attribute named torso).
ENCODER_PREFIX = "torso.encoder."
INPUTS = ("threshold", "scaled")


def _ints(entry: list, count: int, where: str) -> list[int]:
    values = entry[1:]
    if len(values) != count or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_WIDTH for v in values
    ):
        raise ValueError(f"{where}: expected {count} sizes in 0..{MAX_WIDTH}, got {values!r}")
    return values


def build_encoder(layers: Any) -> nn.Sequential:
    """The encoder's layers from their description, weights uninitialised-then-replaced by
    ``load_weights``; sizes checked first."""
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        raise ValueError(f"the encoder has {len(layers) if isinstance(layers, list) else '?'} "
                         f"layers; 1..{MAX_LAYERS}")  # fmt: skip
    modules: list[nn.Module] = []
    total = 0
    for i, entry in enumerate(layers):
        where = f"encoder layer {i}"
        kind = entry[0] if isinstance(entry, list) and entry else None
        if kind == "conv":
            c_in, c_out, k, stride, pad = _ints(entry, 5, where)
            if not (c_in and c_out and 0 < k <= 16 and 0 < stride <= 8 and pad <= 8):
                raise ValueError(f"{where}: convolution sizes {entry[1:]} out of bounds")
            total += c_in * c_out * k * k
            modules.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, device="meta"))
        elif kind == "linear":
            f_in, f_out = _ints(entry, 2, where)
            if not (f_in and f_out):
                raise ValueError(f"{where}: linear sizes {entry[1:]} out of bounds")
            total += f_in * f_out
            modules.append(nn.Linear(f_in, f_out, device="meta"))
        elif kind == "relu" and len(entry) == 1:
            modules.append(nn.ReLU())
        elif kind == "flatten" and len(entry) == 1:
            modules.append(nn.Flatten())
        else:
            raise ValueError(f"{where}: {str(entry)[:60]} is not conv, linear, relu or flatten")
        if total > MAX_WEIGHTS:
            raise ValueError(f"the encoder has more than {MAX_WEIGHTS} weights")
    return nn.Sequential(*modules)


def load_weights(encoder: nn.Sequential, weights: Any) -> None:
    """Put the exported arrays into the layers: exactly their names and shapes, finite."""
    if not isinstance(weights, dict):
        raise ValueError("the encoder's weights are not a mapping of arrays")
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    if set(weights) != set(expected):
        raise ValueError(f"the encoder's weights name {sorted(weights)[:4]}, its layers "
                         f"{sorted(expected)[:4]}")  # fmt: skip
    tensors = {}
    for name, shape in expected.items():
        array = np.asarray(weights[name], dtype=np.float32)
        if array.shape != shape or not np.isfinite(array).all():
            raise ValueError(f"encoder weight {name}: shape {array.shape}, expected {shape}, "
                             "finite")  # fmt: skip
        tensors[name] = torch.from_numpy(array.copy())
    encoder.load_state_dict(tensors, assign=True)


class FrameEncoderTorso(nn.Module):
    """(B, k, H, W) frames scaled to [0, 1] -> (B, 512): the encoder's mean of each frame,
    concatenated, through Linear + ReLU."""

    def __init__(self, export: dict[str, Any], frames: int, frame_shape: tuple[int, int]) -> None:
        super().__init__()
        shape = export.get("shape")
        if list(shape or ()) != [1, *frame_shape]:
            trained = "x".join(map(str, shape)) if isinstance(shape, list) else str(shape)
            raise ValueError(
                f"the encoder was trained on {trained[:40]} images; this env's frames are "
                f"1x{frame_shape[0]}x{frame_shape[1]} (record the env and train the VAE on it)"
            )
        latent = export.get("latent_dim")
        if not isinstance(latent, int) or not 0 < latent <= MAX_WIDTH:
            raise ValueError(f"the encoder's latent_dim {latent!r} is not a size")
        if export.get("input") not in INPUTS:
            raise ValueError(f"the encoder's input {export.get('input')!r}: one of {INPUTS}")
        self.encoder = build_encoder(export.get("layers"))
        if "weights" in export:
            load_weights(self.encoder, export["weights"])
        else:  # rebuilt from a run's spec: its checkpoint holds the weights
            self.encoder.to_empty(device="cpu")
            for layer in self.encoder:
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    layer.reset_parameters()
        with torch.no_grad():  # its output is the VAE's (mean, log-variance)
            out = self.encoder(torch.zeros(1, 1, *frame_shape))
        if out.shape != (1, 2 * latent):
            raise ValueError(f"the encoder gives {tuple(out.shape)}, not (1, {2 * latent})")
        self.threshold = export["input"] == "threshold"
        self.frames, self.latent = frames, latent
        self.project = nn.Sequential(nn.Linear(frames * latent, FEATURES), nn.ReLU())

    def means(self, x_BKHW: torch.Tensor) -> torch.Tensor:
        """Each frame's encoder mean, (B, k, latent)."""
        b, k, h, w = x_BKHW.shape
        x = x_BKHW.reshape(b * k, 1, h, w)
        if self.threshold:  # as the VAE saw binarized frames: pixel >= 128
            x = (x >= torch.tensor(128.0) / 255.0).to(x.dtype)
        return self.encoder(x)[:, : self.latent].reshape(b, k, self.latent)

    def forward(self, x_BKHW: torch.Tensor) -> torch.Tensor:
        return self.project(self.means(x_BKHW).flatten(1))


def image_torso(obs_shape: tuple[int, ...], cfg: dict[str, Any]) -> tuple[nn.Module, int]:
    """The torso for (k, 84, 84) frames an RLModule's model config asks for: the Nature CNN,
    or with ``encoder`` (an export) a ``FrameEncoderTorso``, its encoder's weights frozen
    (``encoder_mode=frozen``) or trainable. Returns the torso and its output width."""
    from algorithms.common.networks import nature_cnn

    if cfg.get("encoder") is None:
        if len(obs_shape) != 3 or tuple(obs_shape[1:]) != (84, 84):
            raise ValueError(f"the Nature CNN needs (C, 84, 84) observations, got {obs_shape}")
        return nature_cnn(obs_shape[0])
    if len(obs_shape) != 3:
        raise ValueError(f"an encoder torso needs stacked frames (k, H, W), got {obs_shape}")
    frames, height, width = obs_shape
    torso = FrameEncoderTorso(cfg["encoder"], frames=frames, frame_shape=(height, width))
    if cfg.get("encoder_mode", "frozen") == "frozen":
        torso.encoder.requires_grad_(False)
    return torso, FEATURES


def encoder_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters of every pretrained encoder inside ``module`` (what a
    fine-tuning run steps at ``encoder_lr``)."""
    return [
        p
        for torso in module.modules()
        if isinstance(torso, FrameEncoderTorso)
        for p in torso.encoder.parameters()
        if p.requires_grad
    ]
