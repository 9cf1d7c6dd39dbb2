"""PixelCNN settings (``--set KEY=VALUE``)."""

from __future__ import annotations

import dataclasses

from generative.config import GenConfig
from runkit.checks import check_choice, check_range

VARIANTS = ("plain", "gated")


@dataclasses.dataclass
class PixelCNNConfig(GenConfig):
    variant: str = "plain"  # plain (mask A/B residual stack) | gated (no blind spot)
    # CPU-sized defaults; the paper's MNIST model is features=128, layers=15 (README).
    features: int = 32  # feature maps per layer
    layers: int = 5  # residual blocks (plain) or gated layers after the first
    output_features: int = 64  # width of the 1x1 output layers
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        check_choice("variant", self.variant, VARIANTS)
        for key in ("features", "layers", "output_features"):
            check_range(key, getattr(self, key), low=1, integer=True)

    @property
    def likelihood(self) -> str:
        return "categorical" if self.binarize == "none" else "bernoulli"
