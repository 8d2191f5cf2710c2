"""The lesson's Keras convnet as a plain PyTorch module, with the knobs the lesson explains.

Defaults give exactly the seed model::

    Conv2D(32, 3x3, relu) -> Conv2D(64, 3x3, relu) -> MaxPooling2D(2x2) -> Dropout(0.25)
    -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10)        # 1,199,882 parameters

The network returns logits; softmax is applied by the loss and by ``predict``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from torch import Tensor, nn

from cnnlab.errors import CnnlabError
from cnnlab.layers import Dropout, Features, Flatten

PADDINGS = ("valid", "same")
INITS = ("keras", "torch")


class ArchError(CnnlabError):
    """An architecture setting that cannot work (names the ``model.`` key and its value)."""


@dataclass(frozen=True)
class Arch:
    """Architecture hyperparameters; one conv block = ``convs_per_block`` convs, a pool, a dropout.

    The first conv has ``filters`` filters and every further conv doubles them (32 -> 64 in the
    seed). ``padding`` and ``stride`` follow Keras: "valid" shrinks each side by kernel_size - 1,
    "same" keeps the size (divided by the stride, rounded up). Pools use stride = pool size.
    """

    filters: int = 32
    kernel_size: int = 3
    pool_size: int = 2
    dropout: float = 0.25
    dense_units: int = 128
    dense_dropout: float = 0.5
    padding: str = "valid"
    stride: int = 1
    conv_blocks: int = 1
    convs_per_block: int = 2
    dense_layers: int = 1
    num_classes: int = 10
    init: str = "keras"

    def check(self, in_size: int = 28) -> None:
        """Raise ArchError naming the first impossible setting, before anything is built."""
        for key in ("filters", "kernel_size", "pool_size", "dense_units", "stride",
                    "conv_blocks", "convs_per_block", "num_classes"):  # fmt: skip
            if getattr(self, key) < 1:
                self._fail(key, "must be >= 1")
        if self.dense_layers < 0:
            self._fail("dense_layers", "must be >= 0")
        for key in ("dropout", "dense_dropout"):
            if not 0 <= getattr(self, key) < 1:
                self._fail(key, "must be in [0, 1)")
        if self.padding not in PADDINGS:
            self._fail("padding", f"must be one of {', '.join(PADDINGS)}")
        if self.init not in INITS:
            self._fail("init", f"must be one of {', '.join(INITS)}")
        self.feature_shape(in_size)

    def _fail(self, key: str, why: str) -> None:
        raise ArchError(f"model.{key}={getattr(self, key)!r}: {why}")

    def conv_out(self, size: int) -> int:
        """Side length after one conv, as Keras computes it."""
        if self.padding == "same":
            return math.ceil(size / self.stride)
        return (size - self.kernel_size) // self.stride + 1

    def feature_shape(self, in_size: int = 28) -> tuple[int, int, int]:
        """(channels, height, width) entering Flatten; raises if the input shrinks to nothing."""
        size, channels = in_size, 1
        for block in range(self.conv_blocks):
            for conv in range(self.convs_per_block):
                channels = self.filters * 2 ** (block * self.convs_per_block + conv)
                if (size := self.conv_out(size)) < 1:
                    raise ArchError(
                        f"model.kernel_size={self.kernel_size} with stride={self.stride} and "
                        f"padding={self.padding} shrinks the {in_size}x{in_size} input to nothing "
                        f"at conv {conv + 1} of block {block + 1}"
                    )
            if (size := size // self.pool_size) < 1:
                raise ArchError(
                    f"model.pool_size={self.pool_size} shrinks the feature map to nothing in "
                    f"block {block + 1} (kernel_size={self.kernel_size}, padding={self.padding})"
                )
        return channels, size, size


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
