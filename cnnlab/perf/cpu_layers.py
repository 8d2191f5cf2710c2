"""Faster CPU versions of three of PyTorch's layers, swapped into any network in place
(``speed.cpu_layers``): the same function, the same parameter names, cheaper on a CPU.

The profile behind them, with the time each saves, is in docs/speed.md:

- ``nn.Dropout`` draws its mask with ``bernoulli_``, one call of the random generator per
  element, a large share of a CPU step. ``Dropout`` here draws 64 random bits per call and uses
  15 of them per element (4 elements a call). Elsewhere than on a CPU it is PyTorch's own.
- ``nn.Flatten`` of a channels_last tensor hands its gradient back in the standard layout; max
  pooling's backward then copies both of its inputs to match. ``Flatten`` here returns the
  gradient in the layout its input had.
- A ReLU that feeds a max-pool runs after the pool instead (``MaxPoolReLU``, the ReLU's own
  place left an ``nn.Identity``): max(relu(x)) = relu(max(x)), bit for bit, and so do their
  gradients, on a quarter of the values.

None of these modules holds a parameter or buffer, so a checkpoint is the same with or without
them; ``print(net)`` shows the swap.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
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


class MaxPoolReLU(nn.MaxPool2d):
    """``nn.MaxPool2d`` then ReLU: what ReLU then max-pool compute, on a quarter of the values.

    The pool hands its gradient to the first maximum of each window, the same element either
    way when the maximum is positive; when it is <= 0, ReLU's gradient is 0 either way."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


def use_cpu_layers(net: nn.Module) -> None:
    """Swap the three layers into ``net`` in place, wherever they are (plain PyTorch modules
    only: a subclass of them is somebody's own and stays), each in its layer's mode."""
    for parent in list(net.modules()):
        children = list(parent.named_children())
        for (name, layer), (next_name, following) in itertools.pairwise(children):
            if isinstance(parent, nn.Sequential) and _relu_then_pool(layer, following):
                _swap(parent, name, nn.Identity())  # the pool after it applies the ReLU
                _swap(parent, next_name, MaxPoolReLU(following.kernel_size, following.stride,
                                                     following.padding, following.dilation,
                                                     ceil_mode=following.ceil_mode))  # fmt: skip
        for name, layer in parent.named_children():
            if type(layer) is nn.Dropout:
                _swap(parent, name, Dropout(layer.p))
            elif type(layer) is nn.Flatten:
                _swap(parent, name, Flatten(layer.start_dim, layer.end_dim))


def _relu_then_pool(layer: nn.Module, following: nn.Module) -> bool:
    return type(layer) is nn.ReLU and type(following) is nn.MaxPool2d


def _swap(parent: nn.Module, name: str, layer: nn.Module) -> None:
    layer.train(getattr(parent, name).training)
    setattr(parent, name, layer)
