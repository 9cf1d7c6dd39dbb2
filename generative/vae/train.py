"""The VAE as a generative Job: loss of a batch, test metrics, image grids, samples."""

from __future__ import annotations

from typing import Any

import torch

from generative.vae import losses
from generative.vae.config import VAEConfig
from generative.vae.model import VAE
from runkit.errors import UserError

GRID_SEED = 1234  # the same prior samples every epoch, so the grids show progress


class VAEJob:
    name = "vae"
    config_class = VAEConfig

    def build_model(self, cfg: VAEConfig, shape: tuple[int, int, int]) -> VAE:
        return VAE(
            shape,
            arch=cfg.arch,
            latent_dim=cfg.latent_dim,
            hidden=cfg.hidden,
            likelihood=cfg.resolved_likelihood,
        )

    def loss(self, model: Any, x: torch.Tensor, cfg: VAEConfig) -> torch.Tensor:
        """Mean -ELBO (beta-weighted) per image; ``model`` may be the DDP wrapper."""
        log_lik, kl = model(x)
        return losses.negative_elbo(log_likelihood_B=log_lik, kl_B=kl, beta=cfg.beta).mean()

    @torch.no_grad()
    def evaluate(self, model: VAE, x_test: torch.Tensor, cfg: VAEConfig) -> dict[str, float]:
        recon, kl, iw = [], [], []
        for chunk in x_test.split(250):
            log_lik, kl_b = model(chunk)
            recon.append(-log_lik)
            kl.append(kl_b)
            iw.append(model.importance_weighted_nll(chunk, cfg.iw_samples))
        recon_nats = float(torch.cat(recon).mean())
        kl_nats = float(torch.cat(kl).mean())
        nll = float(torch.cat(iw).mean())
        dims = model.dims
        return {
            "test_neg_elbo_nats": recon_nats + kl_nats,
            "test_neg_elbo_bits_per_dim": float(losses.bits_per_dim(recon_nats + kl_nats, dims)),
            "test_recon_nats": recon_nats,
            "test_kl_nats": kl_nats,
            "test_nll_nats": nll,  # importance-weighted, K = iw_samples
            "test_bits_per_dim": float(losses.bits_per_dim(nll, dims)),
        }

    @torch.no_grad()
    def grids(self, model: VAE, x_test: torch.Tensor, cfg: VAEConfig) -> dict[str, torch.Tensor]:
        """Prior samples; test inputs next to their reconstructions (pairs of columns); a
        latent interpolation between test images (rows of 8)."""
        device = next(model.parameters()).device
        samples = self.sample(model, cfg.grid_n, cfg, seed=GRID_SEED)
        n = min(cfg.grid_n // 2, len(x_test))
        x = x_test[:n].to(device)
        mu, _ = model.encode(x)
        recon = model.mean_image(mu)
        shown = model.inputs(x)
        pairs = torch.stack([shown, recon], dim=1).flatten(0, 1)  # input, recon, input, ...
        rows = min(8, len(x_test) // 2)
        a, b = (
            model.encode(x_test[:rows].to(device))[0],
            model.encode(x_test[rows : 2 * rows].to(device))[0],
        )
        steps = torch.linspace(0, 1, 8, device=device).view(1, 8, 1)
        path = (a.unsqueeze(1) * (1 - steps) + b.unsqueeze(1) * steps).flatten(0, 1)
        return {
            "samples": samples,
            "reconstructions": pairs,
            "interpolation": model.mean_image(path),
        }

    @torch.no_grad()
    def sample(
        self, model: VAE, n: int, cfg: VAEConfig, *, seed: int, sampler: str = "cached"
    ) -> torch.Tensor:
        """n decoded prior draws (one decoder pass: ``sampler`` matters only to the PixelCNN)."""
        return model.sample(n, generator=torch.Generator().manual_seed(seed))

    def complete(
        self, model: VAE, x: torch.Tensor, cfg: VAEConfig, *, seed: int, sampler: str = "cached"
    ) -> torch.Tensor:
        raise UserError("--complete-from: the vae model does not complete images (pixelcnn does)")
