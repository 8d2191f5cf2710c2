"""One record of how an image becomes the network's input: training, ``predict`` and an
exported model's server all prepare an image the same way (``../shared/design/data.md``).

The data config states it (``channels``, ``image_size``, ``recipe``); the checkpoint carries
that config, so ``predict`` and ``cnnlab.export`` rebuild the same record from it, and the
ONNX file's metadata repeats ``as_dict()`` for a server that has neither torch nor cnnlab.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor
from torchvision.transforms.v2 import functional as F

from cnnlab.data.decode import decode
from cnnlab.data.digits import SIZE, load_digit
from cnnlab.errors import CnnlabError

RECIPES = ("digit", "resize")
"""digit: MNIST's recipe (cnnlab.data.digits: grey, cropped to the ink, centred, inverted when
dark on light), for digit data only; resize: the image as it is, converted to the data's
channels and resized to its size."""


@dataclass(frozen=True)
class Preparation:
    """How a file becomes a (channels, height, width) float32 tensor in [0, 1]."""

    channels: int  # 1 (grey) or 3 (RGB)
    height: int
    width: int
    recipe: str = "resize"
    scale: float = 1 / 255  # uint8 pixel -> [0, 1]

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise CnnlabError(f"data.recipe={self.recipe!r}: must be one of {', '.join(RECIPES)}")
        if self.channels not in (1, 3):
            raise CnnlabError(f"data.channels={self.channels}: must be 1 (grey) or 3 (colour)")
        if self.recipe == "digit" and (self.channels, self.height, self.width) != (1, SIZE, SIZE):
            raise CnnlabError(
                f"data.recipe=digit: MNIST's digit recipe makes 1x{SIZE}x{SIZE} images, not "
                f"{self.channels}x{self.height}x{self.width} (use data.recipe=resize)"
            )

    @classmethod
    def of_data(cls, data: Mapping[str, Any]) -> Preparation:
        """The record a data config states (a checkpoint's ``config["data"]`` included)."""
        if "recipe" not in data:
            raise CnnlabError(
                "data.recipe is missing: the checkpoint or data config predates the recipe record "
                f"(2026-12-06); state it ({', '.join(RECIPES)}) or train again with this cnnlab"
            )
        size = data["image_size"]
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return cls(int(data["channels"]), int(height), int(width), data["recipe"])

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Preparation:
        """The record ``as_dict`` wrote (an ONNX file's metadata)."""
        return cls(**{k: record[k] for k in ("channels", "height", "width", "recipe", "scale")})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def resize(self, images: Tensor) -> Tensor:
        """uint8 (..., C, H, W) images at this record's size (bilinear, antialiased, as
        torchvision resizes); the same call for a folder's images and for predict's."""
        if tuple(images.shape[-2:]) == (self.height, self.width):
            return images
        return F.resize(images, [self.height, self.width], antialias=True)

    def load(self, path: Path, invert: object = "auto") -> Tensor:
        """One file as the network's input, decoded and resized as a folder's images are for
        training (``cnnlab.data.decode``); ImageFileError names the file if it can't be used."""
        if self.recipe == "digit":
            return load_digit(path, invert)
        return self.resize(decode(path, self.channels)).float() * self.scale
