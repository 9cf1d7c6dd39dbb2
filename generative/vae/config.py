"""VAE settings (``--set KEY=VALUE``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from generative.config import MAX_IW_SAMPLES, MAX_WIDTH, GenConfig
from runkit.checks import Rule, choice, integer, number

ARCHS = ("mlp", "conv")
LIKELIHOODS = ("auto", "bernoulli", "categorical")


@dataclasses.dataclass(frozen=True)
class VAEConfig(GenConfig):
    arch: str = "mlp"  # mlp | conv
    latent_dim: int = 32
    hidden: int = 512
    likelihood: str = "auto"  # bernoulli for binarized data, categorical (256-way) for 8-bit
    beta: float = 1.0  # weight of the KL term; 1.0 = the true ELBO
    iw_samples: int = 50  # K of the importance-weighted test NLL

    RULES: ClassVar[dict[str, Rule]] = {
        "arch": choice(*ARCHS),
        "likelihood": choice(*LIKELIHOODS),
        "latent_dim": integer(1, MAX_WIDTH),
        "hidden": integer(1, MAX_WIDTH),
        "iw_samples": integer(1, MAX_IW_SAMPLES),
        "beta": number(0.0),
    }
    KEY_DOCS: ClassVar[dict[str, str]] = {
        "arch": "mlp or conv encoder and decoder.",
        "latent_dim": "size of the latent code z.",
        "hidden": "units (mlp) or feature maps (conv) of the hidden layers.",
        "likelihood": "auto, bernoulli (binarized data) or categorical (256-way, 8-bit data).",
        "beta": "weight of the KL term; 1.0 is the true ELBO.",
        "iw_samples": "K of the importance-weighted test NLL.",
    }

    def validate(self) -> None:
        super().validate()
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
