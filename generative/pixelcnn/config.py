"""PixelCNN settings (``--set KEY=VALUE``)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from generative.config import MAX_LAYERS, MAX_WIDTH, GenConfig
from runkit.checks import Rule, choice, integer

VARIANTS = ("plain", "gated")


@dataclasses.dataclass(frozen=True)
class PixelCNNConfig(GenConfig):
    variant: str = "plain"  # plain (mask A/B residual stack) | gated (no blind spot)
    # CPU-sized defaults; the paper's MNIST model is features=128, layers=15 (README).
    features: int = 32  # feature maps per layer
    layers: int = 5  # residual blocks (plain) or gated layers after the first
    output_features: int = 64  # width of the 1x1 output layers
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3

    RULES: ClassVar[dict[str, Rule]] = {
        "variant": choice(*VARIANTS),
        "features": integer(1, MAX_WIDTH),
        "layers": integer(1, MAX_LAYERS),
        "output_features": integer(1, MAX_WIDTH),
    }
    KEY_DOCS: ClassVar[dict[str, str]] = {
        "variant": "plain (mask A/B residual stack) or gated (no blind spot).",
        "features": "feature maps per layer.",
        "layers": "residual blocks (plain) or gated layers after the first.",
        "output_features": "width of the 1x1 output layers.",
    }

    @property
    def likelihood(self) -> str:
        return "categorical" if self.binarize == "none" else "bernoulli"
