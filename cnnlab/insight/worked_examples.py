"""The lesson's worked examples, computed by the layers cnnlab's model is built from.

``python -m cnnlab.lesson`` prints them: the 5x5 binary image convolved with the 3x3 filter
(stride 1, no padding), a 2x2 max pool with stride 2, and zero padding that keeps the size.
Each uses the same ``nn.Conv2d`` / ``nn.MaxPool2d`` / ``same_padding`` that ``KerasCNN`` uses,
so the numbers are what the real network computes, not a re-implementation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab.models.keras_cnn import same_padding

IMAGE = torch.tensor(
    [
        [1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 1, 1],
        [0, 0, 1, 1, 0],
        [0, 1, 1, 0, 0],
    ],
    dtype=torch.float32,
)
"""The lesson's 5x5 input image (pixel values 0 and 1)."""

FILTER = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=torch.float32)
"""The lesson's 3x3 filter."""

POOL_INPUT = torch.tensor(
    [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], dtype=torch.float32
)
"""A 4x4 feature map for the max-pooling figure (16 features -> 4); the lesson's text has no
numbers for it, so this is the classic illustration it reproduces (from CS231n)."""


def conv_layer(kernel: Tensor, padding: str = "valid", in_size: int = 5) -> nn.Module:
    """A one-filter ``nn.Conv2d`` (stride 1, no bias) holding ``kernel``, as KerasCNN builds it.

    ``padding="same"`` puts KerasCNN's zero padding in front, so an ``in_size`` x ``in_size``
    input keeps its size.
    """
    size = kernel.shape[-1]
    conv = nn.Conv2d(1, 1, size, stride=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(kernel.view(1, 1, size, size))
    pad = same_padding(in_size, size, 1) if padding == "same" else None
    return nn.Sequential(pad, conv) if pad is not None else conv


def as_map(layer: nn.Module, image: Tensor) -> Tensor:
    """Apply ``layer`` to one 2-D image and return the 2-D result (no autograd)."""
    with torch.no_grad():
        return layer(image[None, None])[0, 0]


def convolve(image: Tensor = IMAGE, kernel: Tensor = FILTER, padding: str = "valid") -> Tensor:
    """The feature map of the lesson's convolution (valid: 5x5 -> 3x3; same: 5x5 -> 5x5)."""
    return as_map(conv_layer(kernel, padding, image.shape[-1]), image)


def max_pool(feature_map: Tensor = POOL_INPUT, size: int = 2) -> Tensor:
    """Max pooling with a ``size`` x ``size`` window and stride ``size``, as in KerasCNN."""
    return as_map(nn.MaxPool2d(size), feature_map)


def show(title: str, matrix: Tensor) -> str:
    """A matrix as the lesson prints it: a title, then one tab-separated row per line."""
    rows = ["\t".join(f"{v:g}" for v in row.tolist()) for row in matrix]
    return "\n".join([f"{title} ({matrix.shape[0]}x{matrix.shape[1]}):", *rows, ""])


def main() -> None:
    print(show("Input image", IMAGE))
    print(show("Filter", FILTER))
    print(show("Feature map: convolution, stride 1, no padding", convolve()))
    print(show("Feature map: zero padding ('same') keeps the size", convolve(padding="same")))
    print(show("Feature map before pooling", POOL_INPUT))
    print(show("After 2x2 max pooling, stride 2", max_pool()))
