"""Generative checkpoints made without training (weights from torch's initialisation, seeded),
written exactly as the training job writes them: the source of a pretrained encoder in the
tests that hand one to RL."""

from __future__ import annotations

from pathlib import Path

import torch

from generative.configure import load_job

# Not a seed any test run uses: an RL run seeded like the checkpoint would build its own copy
# of the encoder with the same numbers, and a weight that never arrived would look loaded.
SEED = 90_210


def write_checkpoint(path: Path, model: str = "vae", shape=(1, 84, 84), **config):
    """A ``model`` checkpoint for images of ``shape`` at ``path``; returns the network."""
    job = load_job(model)
    cfg = job.config_class.from_overrides(model, config)
    torch.manual_seed(SEED)
    net = job.build_model(cfg, shape)
    path.mkdir(parents=True)
    state = {
        "model": net.state_dict(), "epoch": 1, "elapsed_s": 1.0, "config": cfg.to_dict(),
        "shape": list(shape), "model_name": model,
    }  # fmt: skip
    torch.save(state, path / "state.pt")
    return net


def small_frame_vae(path: Path) -> Path:
    """A small VAE for Breakout's 84x84 frames (an MLP encoder, 64 hidden units, 8 latents)."""
    write_checkpoint(path, arch="mlp", hidden=64, latent_dim=8)
    return path
