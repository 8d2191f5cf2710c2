"""One image file -> a uint8 (channels, height, width) tensor: how a folder's images are read for
training and how ``predict`` reads a file for a network trained on them, so the two agree to
the pixel.

torchvision's decoders (``torchvision.io.decode_image``) take the common case, 8-bit grey or
RGB PNG, JPEG and WebP, without PIL; PIL takes the rest (palette, 16-bit, CMYK, transparency,
BMP, TIFF, GIF), through ``cnnlab.data.digits.read_image``, which refuses a decompression bomb
from the header and lays transparency on contrasting paper, as ``predict`` always has.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, read_file

from cnnlab.data.digits import MAX_PIXELS, ImageFileError, read_image

TORCHVISION_FORMATS = ("PNG", "JPEG", "WEBP")  # decoded by torchvision when 8-bit L or RGB
TORCHVISION_MODES = ("L", "RGB")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # everything else is colour


@dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding its pixels."""

    format: str
    mode: str
    width: int
    height: int

    @property
    def colour(self) -> bool:
        return self.mode not in GREY_MODES


def read_header(path: Path) -> Header:
    """The file's format, mode and size; ImageFileError if it is no image or a bomb."""
    try:
        with warnings.catch_warnings():  # PIL warns of sizes below its own limit; ours is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                header = Header(str(image.format), image.mode, *image.size)
    except Image.DecompressionBombError as e:
        raise ImageFileError(f"{path}: too large to read ({e})") from None
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: unreadable image ({e})") from None
    if header.width * header.height > MAX_PIXELS:
        raise ImageFileError(
            f"{path}: {header.width}x{header.height} pixels is too large to read (at most "
            f"{MAX_PIXELS:,} pixels, a decompression bomb's guard); scale it down first"
        )
    return header


def decode(path: Path, channels: int, header: Header | None = None) -> Tensor:
    """The file as uint8 (channels, H, W) at its own size; ImageFileError names the file."""
    header = header or read_header(path)
    if header.format in TORCHVISION_FORMATS and header.mode in TORCHVISION_MODES:
        mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
        try:
            return decode_image(read_file(str(path)), mode=mode)
        except RuntimeError:  # torchvision's decoders say where in their C++ they stopped
            raise ImageFileError(f"{path}: unreadable image (truncated or corrupt)") from None
    pixels = np.array(read_image(path, "L" if channels == 1 else "RGB"), dtype=np.uint8)
    tensor = torch.from_numpy(pixels)
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
