"""PixelCNN (van den Oord et al. 2016): masked convolutions over pixels in raster order, colour
channels ordered R -> G -> B; the plain stack (7x7 mask-A convolution, residual blocks of
mask-B convolutions, 1x1 output layers) and the gated variant with vertical and horizontal
stacks, which has no blind spot.

Outputs: one Bernoulli logit per pixel for binary data, (B, 1, H, W); a 256-way softmax per
pixel and channel for 8-bit data, (B, 256, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_groups(features: int, channels: int) -> torch.Tensor:
    """Which colour (0 = R, 1 = G, 2 = B) each of ``features`` maps belongs to: in blocks,
    so map k belongs to colour k * channels // features (one colour when channels = 1)."""
    return torch.arange(features) * channels // features


def spatial_channel_mask(
    out_features: int, in_features: int, k: int, *, mask_type: str, channels: int
) -> torch.Tensor:
    """The (out, in, k, k) 0/1 mask of a masked convolution.

    Spatially: the rows above the centre and the pixels left of it are visible; the centre
    pixel itself only through the channel rule. Channels: an output map of colour o sees input
    maps of colour i at the centre where i < o (mask A: strictly earlier colours, so the
    current value is hidden) or i <= o (mask B)."""
    mask = torch.zeros(out_features, in_features, k, k)
    c = k // 2
    mask[:, :, :c, :] = 1
    mask[:, :, c, :c] = 1
    o = channel_groups(out_features, channels).view(-1, 1)
    i = channel_groups(in_features, channels).view(1, -1)
    centre = (i < o) if mask_type == "A" else (i <= o)
    mask[:, :, c, c] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    mask: torch.Tensor

    def __init__(
        self, in_features: int, out_features: int, k: int, *, mask_type: str, channels: int
    ) -> None:
        super().__init__(in_features, out_features, k, padding=k // 2)
        mask = spatial_channel_mask(
            out_features, in_features, k, mask_type=mask_type, channels=channels
        )
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    """ReLU, 1x1 to h, ReLU, 3x3 mask B, ReLU, 1x1 back to 2h; plus the input (paper, fig. 5)."""

    def __init__(self, features: int, channels: int) -> None:
        super().__init__()
        h = features // 2
        self.net = nn.Sequential(
            nn.ReLU(), MaskedConv2d(features, h, 1, mask_type="B", channels=channels),
            nn.ReLU(), MaskedConv2d(h, h, 3, mask_type="B", channels=channels),
            nn.ReLU(), MaskedConv2d(h, features, 1, mask_type="B", channels=channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class GatedLayer(nn.Module):
    """One gated layer (van den Oord et al. 2016b), out = tanh(W_f * x) . sigmoid(W_g * x).

    Vertical stack: a (k//2 + 1) x k convolution over the rows up to and including the current
    one, every column in reach. Horizontal stack: 1 x (k//2 + 1) over the current row up to the
    current pixel, which it sees through the colour mask (A in the first layer, B after). The
    vertical stack feeds the horizontal one shifted down by a row, so only rows above reach it;
    together they cover every earlier pixel (no blind spot)."""

    def __init__(self, in_features: int, features: int, k: int, channels: int, *, first: bool):
        super().__init__()
        self.first, self.k = first, k
        self.v_conv = nn.Conv2d(in_features, 2 * features, (k // 2 + 1, k))
        self.v_to_h = nn.Conv2d(2 * features, 2 * features, 1)
        self.h_conv = MaskedConv1x(
            in_features, 2 * features, k // 2 + 1, "A" if first else "B", channels
        )
        self.h_out = MaskedConv2d(features, features, 1, mask_type="B", channels=channels)

    @staticmethod
    def gate(x: torch.Tensor) -> torch.Tensor:
        f, g = x.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.k
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # rows r - k//2 .. r
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1, :]  # row r now holds rows < r only
        h_pre = self.h_conv(h) + self.v_to_h(v_down)
        h_new = self.h_out(self.gate(h_pre))
        return self.gate(v_pre), (h_new if self.first else h + h_new)


class MaskedConv1x(nn.Module):
    """A 1 x w convolution over the current row: columns left of the pixel, and the pixel
    itself through the channel mask (``mask_type`` A or B). Its output is the [filter, gate]
    pair of a gated layer: both halves carry the same colour blocks, so the product of map j
    and map j + out_f/2 stays within one colour."""

    mask: torch.Tensor

    def __init__(self, in_f: int, out_f: int, w: int, mask_type: str, channels: int) -> None:
        super().__init__()
        self.w = w
        self.weight = nn.Parameter(torch.empty(out_f, in_f, 1, w))
        self.bias = nn.Parameter(torch.zeros(out_f))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        mask = torch.ones(out_f, in_f, 1, w)
        o = channel_groups(out_f // 2, channels).repeat(2).view(-1, 1)
        i = channel_groups(in_f, channels).view(1, -1)
        mask[:, :, 0, w - 1] = ((i < o) if mask_type == "A" else (i <= o)).float()
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.w - 1, 0, 0, 0))  # the last kernel column is the current pixel
        return F.conv2d(x, self.weight * self.mask, self.bias)


class PixelCNN(nn.Module):
    """``shape`` (C, H, W); ``variant`` plain|gated; ``likelihood`` bernoulli|categorical."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        variant: str = "plain",
        features: int = 64,
        layers: int = 7,
        output_features: int = 256,
        likelihood: str = "bernoulli",
    ) -> None:
        super().__init__()
        c, h, w = self.shape = tuple(shape)
        self.variant, self.likelihood = variant, likelihood
        self.dims = c * h * w
        self.per_dim = 1 if likelihood == "bernoulli" else 256
        if variant == "plain":
            self.first = MaskedConv2d(c, features, 7, mask_type="A", channels=c)
            self.blocks = nn.ModuleList(ResidualBlock(features, c) for _ in range(layers))
        elif variant == "gated":
            self.gated = nn.ModuleList(
                GatedLayer(c if i == 0 else features, features, 7 if i == 0 else 3, c, first=i == 0)
                for i in range(layers + 1)
            )
        else:
            raise ValueError(f"variant={variant!r} is not plain or gated")
        out = c * self.per_dim
        self.head = nn.Sequential(
            nn.ReLU(), MaskedConv2d(features, output_features, 1, mask_type="B", channels=c),
            nn.ReLU(), MaskedConv2d(output_features, out, 1, mask_type="B", channels=c),
        )  # fmt: skip

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Data values -> the network's input, in the model's precision (float32 for training,
        float64 for sampling): 0/1 as they are, 8-bit values scaled to [0, 1]."""
        x = x.to(next(self.parameters()).dtype)
        return x if self.likelihood == "bernoulli" else x / 255.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_i | x_<i) at every position: (B, C, H, W) Bernoulli logits, or
        (B, 256, C, H, W) for 8-bit data."""
        z = self.inputs(x)
        if self.variant == "plain":
            z = self.first(z)
            for block in self.blocks:
                z = block(z)
        else:
            v, hz = z, z
            for layer in self.gated:
                v, hz = layer(v, hz)
            z = hz
        out = self.head(z)
        if self.likelihood == "bernoulli":
            return out
        b, _, h, w = out.shape
        c = self.shape[0]
        return out.view(b, c, 256, h, w).transpose(1, 2)
