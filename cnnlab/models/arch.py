"""The architecture's hyperparameters (``model.*`` in the config), checked before anything is
built."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnlab.errors import CnnlabError

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
