"""Dropout and Flatten as the lesson uses them, rewritten where PyTorch's own are slow on a CPU.

Both compute what ``nn.Dropout`` and ``nn.Flatten`` compute; the profile behind them is in
docs/speed.md. On the seed model (bf16, channels_last, batch 128, 2 cores) they took a training
step from 51 to 33 ms:

- ``nn.Dropout`` draws its mask with ``bernoulli_``, one call of the random generator per
  element: 9 ms a step for the 128x64x12x12 activations, a quarter of the step. ``Dropout`` here
  draws 64 random bits per call and uses 15 of them per element (4 elements a call).
- ``nn.Flatten`` of a channels_last tensor hands its gradient back in the standard layout; max
  pooling's backward then copies both of its inputs to match (6 ms a step). ``Flatten`` here
  returns the gradient in the layout its input had.
"""

from __future__ import annotations

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
