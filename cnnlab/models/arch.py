"""Keras' shape arithmetic, and the checks of the lesson network's knobs: an impossible setting
is one ``model.<key>=<value>`` line, before anything is built."""

from __future__ import annotations

import math

from torch import nn

from cnnlab.errors import CnnlabError

PADDINGS = ("valid", "same")
INITS = ("keras", "torch")


class ArchError(CnnlabError):
    """An architecture setting that cannot work (names the ``model.`` key and its value)."""


def check_knobs(
    counts: dict[str, int], rates: dict[str, float], padding: str, init: str, dense_layers: int
) -> None:
    """``counts`` must be >= 1, ``rates`` in [0, 1); the rest one of their choices."""
    for key, value in counts.items():
        if value < 1:
            raise ArchError(f"model.{key}={value!r}: must be >= 1")
    for key, value in rates.items():
        if not 0 <= value < 1:
            raise ArchError(f"model.{key}={value!r}: must be in [0, 1)")
    if dense_layers < 0:
        raise ArchError(f"model.dense_layers={dense_layers!r}: must be >= 0")
    for key, value, choices in (("padding", padding, PADDINGS), ("init", init, INITS)):
        if value not in choices:
            raise ArchError(f"model.{key}={value!r}: must be one of {', '.join(choices)}")


def conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    """Side length after a conv (or a pool: kernel = stride = pool size), as Keras computes it."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> nn.ZeroPad2d | None:
    """Keras' "same" zero padding (any extra pixel goes bottom/right), or None if none is needed."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    if total == 0:
        return None
    before = total // 2
    return nn.ZeroPad2d((before, total - before, before, total - before))
