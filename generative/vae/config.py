"""VAE settings (``--set KEY=VALUE``)."""

from __future__ import annotations

import dataclasses

from generative.config import GenConfig
from runkit.checks import check_choice, check_range

ARCHS = ("mlp", "conv")
LIKELIHOODS = ("auto", "bernoulli", "categorical")


@dataclasses.dataclass
class VAEConfig(GenConfig):
    arch: str = "mlp"  # mlp | conv
    latent_dim: int = 32
    hidden: int = 512
    likelihood: str = "auto"  # bernoulli for binarized data, categorical (256-way) for 8-bit
    beta: float = 1.0  # weight of the KL term; 1.0 = the true ELBO
    iw_samples: int = 50  # K of the importance-weighted test NLL

    def validate(self) -> None:
        super().validate()
        check_choice("arch", self.arch, ARCHS)
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        for key in ("latent_dim", "hidden", "iw_samples"):
            check_range(key, getattr(self, key), low=1, integer=True)
        check_range("beta", self.beta, low=0.0)
        if self.likelihood == "bernoulli" and self.binarize == "none":
            raise ValueError(
                "likelihood=bernoulli needs binary data: binarize=threshold or dynamic"
            )
        if self.likelihood == "categorical" and self.binarize != "none":
            raise ValueError("likelihood=categorical models 8-bit data: set binarize=none")

    @property
    def resolved_likelihood(self) -> str:
        if self.likelihood != "auto":
            return self.likelihood
        return "categorical" if self.binarize == "none" else "bernoulli"
