"""PixelCNN generation without recomputation: every layer's activations are cached, and each new
value costs one position per layer (the idea of fast PixelCNN generation, Ramachandran et al.
2017), instead of a forward pass over the whole image.

Why one position suffices: every layer is causal in raster order (mask A in the first layer,
mask B after it, the gated variant's vertical stack shifted down a row), so a layer's output at
pixel p depends only on the input at pixels before p and, through the colour mask, the earlier
colours of p itself. Once the values before p are drawn, the outputs at p are final: computing
them at p (a dot product of the cached input window with the masked kernel) and caching them is
all the next draw needs. Within a pixel, R, G, B are drawn in turn, each after one more pass at
p. A pixel's last colour reaches no output at p, so nothing at p needs recomputing after it.

The gated variant's vertical stack sees whole rows (every column of the rows above and of the
current row); it is computed a row at a time, after the row is drawn, and the horizontal stack
at row r reads it at row r - 1, as the model's own shift does.

Both this sampler and the straightforward one (``sampling.fill(..., sampler="naive")``) compute
in float64: the two sum the same terms in different orders, and in float64 their logits agree to
about 1e-15, so the same random numbers draw the same values.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from generative.pixelcnn.model import GatedLayer, MaskedConv1x, MaskedConv2d, PixelCNN


def _kernel(conv: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(in * kh * kw, out) matrix of a (masked) convolution's kernel, and its bias."""
    weight = conv.weight * conv.mask if hasattr(conv, "mask") else conv.weight
    return weight.reshape(weight.shape[0], -1).t().contiguous(), conv.bias


class _Plain:
    """Caches of the plain stack: the padded input image, and each residual block's 3x3
    convolution input; everything else is per position."""

    def __init__(self, model: PixelCNN, x: torch.Tensor) -> None:
        b, c, h, w = x.shape
        assert isinstance(model.first, MaskedConv2d)
        self.k = model.first.kernel_size[0]
        p = self.k // 2
        self.image = x.new_zeros(b, c, h + 2 * p, w + 2 * p)
        self.image[:, :, p : p + h, p : p + w] = x
        self.first = _kernel(model.first)
        self.blocks = []
        self.hidden = []
        for block in model.blocks:
            net: Any = block.net  # ReLU, 1x1, ReLU, 3x3, ReLU, 1x1
            conv1, conv3, conv1b = net[1], net[3], net[5]
            self.blocks.append((_kernel(conv1), _kernel(conv3), _kernel(conv1b)))
            self.hidden.append(x.new_zeros(b, conv3.in_channels, h + 2, w + 2))
        self.head = (_kernel(model.head[1]), _kernel(model.head[3]))

    def set_value(self, r: int, c: int, ch: int, value: torch.Tensor) -> None:
        p = self.k // 2
        self.image[:, ch, r + p, c + p] = value

    def at(self, r: int, c: int) -> torch.Tensor:
        """The output layer's logits at (r, c), (B, C * per_dim); caches the layers there."""
        batch = self.image.shape[0]
        (w0, b0), k = self.first, self.k
        z = self.image[:, :, r : r + k, c : c + k].reshape(batch, -1) @ w0 + b0
        for ((w1, b1), (w3, b3), (w1b, b1b)), hidden in zip(self.blocks, self.hidden, strict=True):
            hidden[:, :, r + 1, c + 1] = torch.relu(torch.relu(z) @ w1 + b1)
            t = hidden[:, :, r : r + 3, c : c + 3].reshape(batch, -1) @ w3 + b3
            z = z + torch.relu(t) @ w1b + b1b
        (wh, bh), (wo, bo) = self.head
        return torch.relu(torch.relu(z) @ wh + bh) @ wo + bo

    def row_done(self, r: int) -> None:
        """Nothing is cached by rows in the plain stack."""


class _Gated:
    """Caches of the gated stack: per layer, the padded inputs of the vertical and horizontal
    stacks and the vertical stack's pre-activations (filled a row at a time)."""

    def __init__(self, model: PixelCNN, x: torch.Tensor) -> None:
        b, c, h, w = x.shape
        self.layers: list[GatedLayer] = list(model.gated)  # type: ignore[arg-type]
        self.v_in, self.h_in, self.v_pre, self.kernels = [], [], [], []
        for i, layer in enumerate(self.layers):
            k, hw = layer.k, layer.k // 2 + 1
            features = c if i == 0 else layer.h_out.out_channels
            self.v_in.append(x.new_zeros(b, features, h + k // 2, w + 2 * (k // 2)))
            self.h_in.append(x.new_zeros(b, features, h, w + hw - 1))
            self.v_pre.append(x.new_zeros(b, layer.v_conv.out_channels, h, w))
            assert isinstance(layer.h_conv, MaskedConv1x)
            self.kernels.append(
                (_kernel(layer.h_conv), _kernel(layer.v_to_h), _kernel(layer.h_out))
            )
        first = self.layers[0]
        self.v_in[0][:, :, first.k // 2 :, first.k // 2 : first.k // 2 + w] = x
        self.h_in[0][:, :, :, first.k // 2 :] = x
        self.head = (_kernel(model.head[1]), _kernel(model.head[3]))

    def set_value(self, r: int, c: int, ch: int, value: torch.Tensor) -> None:
        k = self.layers[0].k
        self.v_in[0][:, ch, r + k // 2, c + k // 2] = value
        self.h_in[0][:, ch, r, c + k // 2] = value

    def at(self, r: int, c: int) -> torch.Tensor:
        batch = self.h_in[0].shape[0]
        out = None
        for i, (layer, ((wh, bh), (wv, bv), (wo, bo))) in enumerate(
            zip(self.layers, self.kernels, strict=True)
        ):
            hw = layer.k // 2 + 1
            h_in = self.h_in[i]
            pre = h_in[:, :, r, c : c + hw].reshape(batch, -1) @ wh + bh
            v_down = self.v_pre[i][:, :, r - 1, c] if r > 0 else torch.zeros_like(pre)
            pre = pre + (v_down @ wv + bv)
            out = GatedLayer.gate(pre) @ wo + bo
            if not layer.first:
                out = h_in[:, :, r, c + hw - 1] + out
            if i + 1 < len(self.layers):
                nxt = self.layers[i + 1].k // 2 + 1
                self.h_in[i + 1][:, :, r, c + nxt - 1] = out
        assert out is not None
        (wh1, bh1), (wh2, bh2) = self.head
        return torch.relu(torch.relu(out) @ wh1 + bh1) @ wh2 + bh2

    def row_done(self, r: int) -> None:
        """The vertical stack at row r, every layer (row r of the image is complete)."""
        for i, layer in enumerate(self.layers):
            k = layer.k
            window = self.v_in[i][:, :, r : r + k // 2 + 1, :]  # rows r - k//2 .. r
            pre = F.conv2d(window, layer.v_conv.weight, layer.v_conv.bias)  # (B, 2F, 1, W)
            self.v_pre[i][:, :, r] = pre[:, :, 0]
            if i + 1 < len(self.layers):
                k2 = self.layers[i + 1].k // 2
                width = pre.shape[-1]
                self.v_in[i + 1][:, :, r + k2, k2 : k2 + width] = GatedLayer.gate(pre)[:, :, 0]


def cached_stack(model: PixelCNN, inputs: torch.Tensor) -> _Plain | _Gated:
    """The caches for ``model`` (in its sampling precision) over ``inputs`` (model space, the
    model's dtype): values not yet drawn are only read through zero mask weights."""
    return _Plain(model, inputs) if model.variant == "plain" else _Gated(model, inputs)
