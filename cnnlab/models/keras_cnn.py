"""The lesson's Keras convnet as a plain PyTorch module, with the knobs the lesson explains.

Defaults give exactly the lesson's model::

    Conv2D(32, 3x3, relu) -> Conv2D(64, 3x3, relu) -> MaxPooling2D(2x2) -> Dropout(0.25)
    -> Flatten -> Dense(128, relu) -> Dropout(0.5) -> Dense(10)        # 1,199,882 parameters

The network returns logits; softmax is applied by the loss and by ``predict``. The input's
channels and size and the number of classes come from the data config (``conf/model/keras_cnn.yaml``
reads ``data.channels``, ``data.image_size``, ``data.num_classes``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import Tensor, nn

from cnnlab.models.arch import ArchError, check_knobs, conv_out, same_padding


class KerasCNN(nn.Module):
    """Feature extraction (conv blocks) then classification (dense layers), as in the lesson.

    One conv block is ``convs_per_block`` convs (each with its ReLU), a max-pool and a dropout.
    The first conv has ``filters`` filters and every further conv doubles them (32 -> 64 in the
    lesson). ``padding`` and ``stride`` follow Keras: "valid" shrinks each side by
    kernel_size - 1, "same" keeps the size (divided by the stride, rounded up); pools use
    stride = pool size. ``init="keras"``: glorot-uniform kernels and zero biases, as Keras
    initialises them (``"torch"``: PyTorch's defaults).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        filters: int = 32,
        kernel_size: int = 3,
        pool_size: int = 2,
        dropout: float = 0.25,
        dense_units: int = 128,
        dense_dropout: float = 0.5,
        padding: str = "valid",
        stride: int = 1,
        conv_blocks: int = 1,
        convs_per_block: int = 2,
        dense_layers: int = 1,
        init: str = "keras",
    ) -> None:
        super().__init__()
        check_knobs(
            {"in_channels": in_channels, "image_size": image_size, "num_classes": num_classes,
             "filters": filters, "kernel_size": kernel_size, "pool_size": pool_size,
             "dense_units": dense_units, "stride": stride, "conv_blocks": conv_blocks,
             "convs_per_block": convs_per_block},
            {"dropout": dropout, "dense_dropout": dense_dropout}, padding, init, dense_layers,
        )  # fmt: skip
        layers: dict[str, nn.Module] = {}
        channels, size, n = in_channels, image_size, 0
        for block in range(1, conv_blocks + 1):
            for conv in range(1, convs_per_block + 1):
                n += 1
                if padding == "same" and (pad := same_padding(size, kernel_size, stride)):
                    layers[f"pad{n}"] = pad
                layers[f"conv{n}"] = nn.Conv2d(
                    channels, filters * 2 ** (n - 1), kernel_size, stride
                )
                layers[f"relu{n}"] = nn.ReLU()
                channels = filters * 2 ** (n - 1)
                if (size := conv_out(size, kernel_size, stride, padding)) < 1:
                    raise ArchError(
                        f"model.kernel_size={kernel_size} with stride={stride} and padding="
                        f"{padding} shrinks the {image_size}x{image_size} input to nothing at "
                        f"conv {conv} of block {block}"
                    )
            layers[f"pool{block}"] = nn.MaxPool2d(pool_size)
            layers[f"dropout{block}"] = nn.Dropout(dropout)
            if (size := size // pool_size) < 1:
                raise ArchError(
                    f"model.pool_size={pool_size} shrinks the feature map to nothing in block "
                    f"{block} (kernel_size={kernel_size}, padding={padding})"
                )
        self.features = nn.Sequential(OrderedDict(layers))
        self.feature_shape = (channels, size, size)  # what Flatten receives
        self.classifier = dense_block(math.prod(self.feature_shape), dense_units,
                                      dense_layers, dense_dropout, num_classes)  # fmt: skip
        if init == "keras":
            self.apply(keras_init)

    def forward(self, x: Tensor) -> Tensor:
        """Images (N, in_channels, image_size, image_size) in [0, 1] -> logits (N, num_classes)."""
        return self.classifier(self.features(x))


def dense_block(width: int, units: int, layers: int, dropout: float, classes: int) -> nn.Sequential:
    """Flatten, ``layers`` hidden Dense(units, relu) + Dropout, and the output layer."""
    named: dict[str, nn.Module] = {"flatten": nn.Flatten()}
    for n in range(1, layers + 1):
        named[f"dense{n}"] = nn.Linear(width, units)
        named[f"dense{n}_relu"] = nn.ReLU()
        named[f"dense{n}_dropout"] = nn.Dropout(dropout)
        width = units
    named["output"] = nn.Linear(width, classes)
    return nn.Sequential(OrderedDict(named))


def keras_init(module: nn.Module) -> None:
    """Keras defaults: glorot-uniform kernels, zero biases (PyTorch's default differs)."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
