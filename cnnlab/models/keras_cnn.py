"""The lesson's Keras convnet as a plain PyTorch module, with the knobs the lesson explains.

Defaults give exactly the seed model::

    Conv2D(32, 3x3, relu) -> Conv2D(64, 3x3, relu) -> MaxPooling2D(2x2) -> Dropout(0.25)
    -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10)        # 1,199,882 parameters

The network returns logits; softmax is applied by the loss and by ``predict``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import Tensor, nn

from cnnlab.models.arch import Arch
from cnnlab.models.layers import Dropout, Features, Flatten


def same_padding(size: int, kernel: int, stride: int) -> nn.ZeroPad2d | None:
    """Keras' "same" zero padding (any extra pixel goes bottom/right), or None if none is needed."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    if total == 0:
        return None
    before = total // 2
    return nn.ZeroPad2d((before, total - before, before, total - before))


class KerasCNN(nn.Module):
    """Feature extraction (conv blocks) then classification (dense layers), as in the lesson."""

    def __init__(self, arch: Arch, in_size: int = 28) -> None:
        super().__init__()
        arch.check(in_size)
        self.arch = arch
        self.features = self._features(arch, in_size)
        self.classifier = self._classifier(arch, math.prod(arch.feature_shape(in_size)))
        if arch.init == "keras":
            self.apply(_keras_init)

    @staticmethod
    def _features(arch: Arch, size: int) -> Features:
        layers: dict[str, nn.Module] = {}
        channels, n = 1, 0
        for block in range(1, arch.conv_blocks + 1):
            for _ in range(arch.convs_per_block):
                n += 1
                out = arch.filters * 2 ** (n - 1)
                if arch.padding == "same" and (
                    pad := same_padding(size, arch.kernel_size, arch.stride)
                ):
                    layers[f"pad{n}"] = pad
                layers[f"conv{n}"] = nn.Conv2d(channels, out, arch.kernel_size, arch.stride)
                layers[f"relu{n}"] = nn.ReLU()
                channels, size = out, arch.conv_out(size)
            layers[f"pool{block}"] = nn.MaxPool2d(arch.pool_size)
            layers[f"dropout{block}"] = Dropout(arch.dropout)
            size //= arch.pool_size
        return Features(OrderedDict(layers))

    @staticmethod
    def _classifier(arch: Arch, flat: int) -> nn.Sequential:
        layers: dict[str, nn.Module] = {"flatten": Flatten()}
        width = flat
        for n in range(1, arch.dense_layers + 1):
            layers[f"dense{n}"] = nn.Linear(width, arch.dense_units)
            layers[f"dense{n}_relu"] = nn.ReLU()
            layers[f"dense{n}_dropout"] = Dropout(arch.dense_dropout)
            width = arch.dense_units
        layers["output"] = nn.Linear(width, arch.num_classes)
        return nn.Sequential(OrderedDict(layers))

    def forward(self, x: Tensor) -> Tensor:
        """Images (N, 1, H, W) in [0, 1] -> logits (N, num_classes)."""
        return self.classifier(self.features(x))


def _keras_init(module: nn.Module) -> None:
    """Keras defaults: glorot-uniform kernels, zero biases (PyTorch's default differs)."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
