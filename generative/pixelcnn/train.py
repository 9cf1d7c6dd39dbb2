"""The PixelCNN as a generative Job: exact NLL loss, test metrics, sample and completion grids."""

from __future__ import annotations

from typing import Any

import torch

from generative.configure import unwrap
from generative.pixelcnn import losses
from generative.pixelcnn.config import PixelCNNConfig
from generative.pixelcnn.model import PixelCNN
from generative.pixelcnn.sampling import complete, sample, to_unit

GRID_SEED = 1234


class PixelCNNJob:
    name = "pixelcnn"
    config_class = PixelCNNConfig

    def build_model(self, cfg: PixelCNNConfig, shape: tuple[int, int, int]) -> PixelCNN:
        return PixelCNN(
            shape,
            variant=cfg.variant,
            features=cfg.features,
            layers=cfg.layers,
            output_features=cfg.output_features,
            likelihood=cfg.likelihood,
        )

    def loss(self, model: Any, x: torch.Tensor, cfg: PixelCNNConfig) -> torch.Tensor:
        core = unwrap(model)
        return losses.nll(model(x), x, core.likelihood).mean()

    @torch.no_grad()
    def evaluate(self, model: PixelCNN, x_test: torch.Tensor, cfg: PixelCNNConfig) -> dict:
        nll = torch.cat([losses.nll(model(c), c, model.likelihood) for c in x_test.split(250)])
        nats = float(nll.mean())
        return {
            "test_nll_nats": nats,
            "test_bits_per_dim": float(losses.bits_per_dim(nats, model.dims)),
        }

    @torch.no_grad()
    def grids(self, model: PixelCNN, x_test: torch.Tensor, cfg: PixelCNNConfig) -> dict:
        n = min(cfg.grid_n, 16)  # raster-order sampling is slow on CPU: small grids per epoch
        gen = torch.Generator().manual_seed(GRID_SEED)
        originals = x_test[:n].to(next(model.parameters()).device)
        completed = complete(model, originals, generator=gen, progress=False)
        pairs = torch.stack([to_unit(model, originals), to_unit(model, completed)], 1)
        return {
            "samples": to_unit(model, sample(model, n, generator=gen, progress=False)),
            "completions": pairs.flatten(0, 1),  # original, completion, original, ...
        }

    @torch.no_grad()
    def sample(
        self, model: PixelCNN, n: int, cfg: PixelCNNConfig, *, seed: int, sampler: str = "cached"
    ) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return to_unit(model, sample(model, n, generator=gen, sampler=sampler))

    @torch.no_grad()
    def complete(
        self,
        model: PixelCNN,
        x: torch.Tensor,
        cfg: PixelCNNConfig,
        *,
        seed: int,
        sampler: str = "cached",
    ) -> torch.Tensor:
        """Originals next to completions of their bottom halves (pairs), in [0, 1]."""
        done = complete(model, x, generator=torch.Generator().manual_seed(seed), sampler=sampler)
        return torch.stack([to_unit(model, x), to_unit(model, done)], 1).flatten(0, 1)
