"""A VAE's encoder handed to another kind of job (``JobKind.export("encoder", ...)``): its
layers as data (kind and sizes, no code), its weights as arrays, what its input must look like
and where it came from. The checkpoint is read as ``rlgen sample`` reads it (checked, tensors
only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runkit.errors import UserError


def vae_encoder(source: str | Path) -> dict[str, Any]:
    """The encoder of the VAE checkpoint (or run directory) at ``source``; a checkpoint of
    another model is refused with one line."""
    from torch import nn

    from generative.checkpoints import find_checkpoint, load_model

    ckpt = find_checkpoint(source)
    job, cfg, loaded = load_model(ckpt)
    model: Any = loaded  # the VAE's own attributes are read below
    if job.name != "vae":
        raise UserError(
            f"--set encoder={source}: the checkpoint holds a {job.name}, not a VAE; an encoder "
            "comes from `rlgen train vae`"
        )
    layers: list[list[Any]] = []
    for layer in model.encoder:
        if isinstance(layer, nn.Conv2d):
            layers.append(
                [
                    "conv",
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size[0],
                    layer.stride[0],
                    layer.padding[0],
                ]  # fmt: skip
            )
        elif isinstance(layer, nn.Linear):
            layers.append(["linear", layer.in_features, layer.out_features])
        elif isinstance(layer, nn.ReLU):
            layers.append(["relu"])
        elif isinstance(layer, nn.Flatten):
            layers.append(["flatten"])
        else:  # the VAE's own layers are the four above
            raise UserError(f"--set encoder={source}: an encoder layer {type(layer).__name__}")
    binarized = model.likelihood == "bernoulli"
    return {
        "layers": layers,
        "weights": {k: v.detach().cpu().numpy() for k, v in model.encoder.state_dict().items()},
        "shape": list(model.shape),  # (C, H, W) of the images it was trained on
        "latent_dim": int(model.latent_dim),
        # pixels in [0, 1] -> the encoder's input: binarized data as its training saw it on
        # average (threshold: x >= 128; dynamic: the Bernoulli mean x / 255), 8-bit data / 255
        "input": "threshold" if binarized and cfg.binarize == "threshold" else "scaled",
        "origin": {
            "checkpoint": str(Path(ckpt).resolve()),
            "model": "vae",
            "arch": model.arch,
            "dataset": str(getattr(cfg, "dataset", "")),
        },
    }
