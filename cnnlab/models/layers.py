"""Layers as the lesson uses them, rewritten where PyTorch's own are slow on a CPU.

Each computes what PyTorch's own computes; the profile behind them, with the time each saves,
is in docs/speed.md:

- ``nn.Dropout`` draws its mask with ``bernoulli_``, one call of the random generator per
  element, a large share of a CPU step. ``Dropout`` here draws 64 random bits per call and uses
  15 of them per element (4 elements a call).
- ``nn.Flatten`` of a channels_last tensor hands its gradient back in the standard layout; max
  pooling's backward then copies both of its inputs to match. ``Flatten`` here returns the
  gradient in the layout its input had.

And ``Features``, the conv blocks, runs each ReLU that feeds a max-pool after the pool instead:
the same numbers and gradients, a quarter of the ReLU work.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

# Each mask element is one uniform 15-bit draw: a drop rate p is applied as round(p * 2**15)
# / 2**15 (0.25 and 0.5 exactly), and kept values are scaled by the exact inverse keep rate.
LEVELS = 1 << 15


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask costs a quarter of the random draws (elsewhere: PyTorch's)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        return x * self._mask_like(x)

    def _mask_like(self, x: Tensor) -> Tensor:
        """0 or 1 / keep-rate, in x's dtype and memory layout (elementwise ops stay layout-pure)."""
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()
        n, drop = x.numel(), round(self.p * LEVELS)
        draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_()  # 63 random bits each
        keep = (draws.view(torch.int16)[:n] & (LEVELS - 1)) >= drop
        return keep.as_strided(x.shape, x.stride()).to(x.dtype).mul_(LEVELS / (LEVELS - drop))


class Flatten(nn.Flatten):
    """``nn.Flatten`` (channel-major order, as ever) whose gradient keeps its input's layout."""

    def forward(self, x: Tensor) -> Tensor:
        return _FlattenKeepingLayout.apply(x, self.start_dim, self.end_dim)


class _FlattenKeepingLayout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, start_dim: int, end_dim: int) -> Tensor:
        ctx.shape = x.shape
        channels_last = x.dim() == 4 and not x.is_contiguous()
        channels_last &= x.is_contiguous(memory_format=torch.channels_last)
        ctx.layout = torch.channels_last if channels_last else torch.contiguous_format
        return x.flatten(start_dim, end_dim)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad.reshape(ctx.shape).contiguous(memory_format=ctx.layout), None, None


class Features(nn.Sequential):
    """The conv blocks in the lesson's order (as printed, saved and plotted), run with every ReLU
    that feeds a max-pool moved after the pool.

    Max-pooling and ReLU commute: max(relu(x)) = relu(max(x)), bit for bit, and so do their
    gradients. The pool hands its gradient to the first maximum of each window, the same
    element either way when the maximum is positive; when it is <= 0, ReLU's gradient is 0
    either way. ReLU on the pooled tensor touches a quarter of the values (docs/speed.md).
    """

    def forward(self, x: Tensor) -> Tensor:
        for layer in pool_before_relu(self):
            x = layer(x)
        return x


def pool_before_relu(layers: Iterable[nn.Module]) -> list[nn.Module]:
    """``layers`` with each ReLU that directly precedes a MaxPool2d moved after it."""
    order = list(layers)
    for i in range(len(order) - 1):
        if isinstance(order[i], nn.ReLU) and isinstance(order[i + 1], nn.MaxPool2d):
            order[i], order[i + 1] = order[i + 1], order[i]
    return order
