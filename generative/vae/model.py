"""Encoder q(z|x) and decoder p(x|z): MLP or convolutional; Bernoulli or 256-way outputs."""

from __future__ import annotations

import torch
from torch import nn

from generative.vae import losses


class VAE(nn.Module):
    """``shape`` (C, H, W); ``arch`` mlp|conv; ``likelihood`` bernoulli (binary data) or
    categorical (8-bit data, 256 logits per pixel and channel)."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        arch: str = "mlp",
        latent_dim: int = 32,
        hidden: int = 512,
        likelihood: str = "bernoulli",
    ) -> None:
        super().__init__()
        self.shape, self.arch, self.likelihood = tuple(shape), arch, likelihood
        self.latent_dim = latent_dim
        c, h, w = self.shape
        self.dims = c * h * w
        self.out_per_dim = 1 if likelihood == "bernoulli" else 256
        if arch == "mlp":
            self.encoder: nn.Module = nn.Sequential(
                nn.Flatten(), nn.Linear(self.dims, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim),
            )  # fmt: skip
            self.decoder: nn.Module = nn.Sequential(
                nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, self.dims * self.out_per_dim),
            )  # fmt: skip
        elif arch == "conv":
            if h % 4 or w % 4:
                raise ValueError(f"arch=conv needs H and W divisible by 4, got {h}x{w}")
            feat = 64 * (h // 4) * (w // 4)
            self.encoder = nn.Sequential(
                nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(feat, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim),
            )  # fmt: skip
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, feat), nn.ReLU(),
                nn.Unflatten(1, (64, h // 4, w // 4)),
                nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(32, c * self.out_per_dim, 4, stride=2, padding=1),
            )  # fmt: skip
        else:
            raise ValueError(f"arch={arch!r} is not mlp or conv")

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> encoder input in [0, 1]: binary x as is, 8-bit x / 255."""
        x = x.float()
        return x if self.likelihood == "bernoulli" else x / 255.0

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(self.inputs(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z_BZ: torch.Tensor) -> torch.Tensor:
        """Logits: (B, C, H, W) for Bernoulli, (B, 256, C, H, W) for 8-bit data."""
        c, h, w = self.shape
        out = self.decoder(z_BZ)
        if self.likelihood == "bernoulli":
            return out.reshape(-1, c, h, w)
        return out.reshape(-1, c, 256, h, w).transpose(1, 2)

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(logits, x)
        return losses.categorical_log_likelihood(logits, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: (log p(x|z) with one reparameterized z ~ q(z|x), KL(q || p))."""
        mu, logvar = self.encode(x)
        z = losses.reparameterize(mu, logvar)
        return self.log_likelihood(self.decode(z), x), losses.gaussian_kl(mu, logvar)

    @torch.no_grad()
    def importance_weighted_nll(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """-log p(x) estimated with the K-sample bound, per image (an upper bound on the NLL):
        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)."""
        mu, logvar = self.encode(x)
        zeros = torch.zeros_like(mu)
        log_w = []
        for _ in range(k):
            z = losses.reparameterize(mu, logvar)
            log_pxz = self.log_likelihood(self.decode(z), x)
            log_pz = losses.log_normal(z, zeros, zeros)
            log_w.append(log_pxz + log_pz - losses.log_normal(z, mu, logvar))
        return -losses.importance_weighted_bound(torch.stack(log_w))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the prior: z ~ N(0, I), x = the decoder's mean (Bernoulli: pixel
        probabilities; 8-bit: the expected value / 255), in [0, 1], (n, C, H, W)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.mean_image(z)

    @torch.no_grad()
    def mean_image(self, z_BZ: torch.Tensor) -> torch.Tensor:
        logits = self.decode(z_BZ)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(logits)
        probs = logits.softmax(dim=1)
        levels = torch.arange(256, device=probs.device, dtype=probs.dtype).view(1, 256, 1, 1, 1)
        return (probs * levels).sum(dim=1) / 255.0
