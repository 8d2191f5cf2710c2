"""Turning any image file into an MNIST-like digit: what ``cnnlab.predict`` feeds the network.

MNIST's recipe (LeCun et al.): grayscale, a light digit on black, the digit's bounding box
scaled to fit 20x20 keeping its aspect ratio, then placed in a 28x28 field so that its centre
of mass sits at the centre (pixel 14, 14), values / 255. A photo of a dark digit on light paper
is inverted first; ``invert="auto"`` decides from the border, which is background in MNIST.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from cnnlab.errors import CnnlabError

SIZE, BOX, CENTRE = 28, 20, 14.0
DIGIT_SHAPE = (1, SIZE, SIZE)  # what every image becomes
NOISE = 0.1
"""Ink fainter than this fraction of the darkest stroke is treated as background (paper grain,
JPEG ripples), so it neither widens the bounding box nor pulls the centre of mass."""
INVERT_MODES = ("auto", "true", "false")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_PIXELS = 50_000_000
"""Larger images are refused from their header, before decoding: a 20000x20000 PNG can be a
few hundred KB on disk and 1.6 GB decoded (a decompression bomb). 50 megapixels is more than
a phone camera takes."""


class ImageFileError(CnnlabError):
    """An image that is missing, unreadable, not an image, or blank (names the file)."""


def read_gray(path: Path) -> np.ndarray:
    """The file as grayscale float32 in [0, 255]; transparency is laid on paper that contrasts
    with the drawing (white under dark ink, black under light ink)."""
    return np.asarray(read_image(path, "L"), dtype=np.float32)


def read_image(path: Path, mode: str) -> Image.Image:
    """The file decoded in PIL ``mode`` ("L" or "RGB"), its size checked from the header first;
    ImageFileError names the file if it can't be used."""
    try:
        with warnings.catch_warnings():  # PIL warns of sizes below its own limit; ours is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > MAX_PIXELS:
                raise ImageFileError(
                    f"{path}: {width}x{height} pixels is too large to read (at most "
                    f"{MAX_PIXELS:,} pixels); scale it down first"
                )
            image.load()
            if "A" in image.getbands() or "transparency" in image.info:
                image = on_contrasting_paper(image.convert("RGBA"))
            return image.convert(mode)
    except Image.DecompressionBombError as e:  # PIL's own limit, hit while reading the header
        raise ImageFileError(f"{path}: too large to read ({e})") from None
    except FileNotFoundError:
        raise ImageFileError(f"{path}: no such file") from None
    except IsADirectoryError:  # image_files expands the folders that hold images
        suffixes = "/".join(IMAGE_SUFFIXES)
        raise ImageFileError(f"{path}: folder holds no {suffixes} files") from None
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: unreadable image ({e})") from None


def on_contrasting_paper(rgba: Image.Image) -> Image.Image:
    """The image laid on white paper, or on black if what is drawn (the opaque part) is light:
    a white digit on a transparent background would vanish on white."""
    pixels = np.asarray(rgba, dtype=np.float32)
    drawn = pixels[..., 3] > 127
    light = drawn.any() and pixels[..., :3][drawn].mean() > 127
    paper = Image.new("RGBA", rgba.size, "black" if light else "white")
    return Image.alpha_composite(paper, rgba)


def invert_mode(value: object) -> str:
    """``invert`` as one of auto/true/false (Hydra reads ``invert=true`` as a bool)."""
    mode = str(value).lower()
    if mode not in INVERT_MODES:
        raise CnnlabError(f"invert={value!r}: must be one of {', '.join(INVERT_MODES)}")
    return mode


def ink_of(gray: np.ndarray, invert: object = "auto") -> np.ndarray:
    """Ink strength in [0, 1]: light-on-dark, background 0, faint noise removed."""
    invert = invert_mode(invert)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if invert == "true" or (invert == "auto" and np.median(border) > 127):
        gray, border = 255 - gray, 255 - border
    ink = np.clip(gray - np.median(border), 0, None)
    if ink.max() < 255 * NOISE:
        raise ValueError("blank image: no digit found")
    ink /= ink.max()
    ink[ink < NOISE] = 0
    return ink


def fit_box(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box, scaled so its longer side is 20 pixels (aspect ratio kept)."""
    rows, cols = np.nonzero(ink)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(crop.shape)
    height, width = (max(1, round(side * scale)) for side in crop.shape)
    if (height, width) == crop.shape:
        return crop
    resized = Image.fromarray(crop.astype(np.float32)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(resized), 0, 1)


def centre(patch: np.ndarray) -> np.ndarray:
    """A 28x28 field with ``patch`` placed so its centre of mass is at (14, 14)."""
    height, width = patch.shape
    mass = patch.sum()
    com_y = (patch.sum(axis=1) * np.arange(height)).sum() / mass
    com_x = (patch.sum(axis=0) * np.arange(width)).sum() / mass
    top = int(np.clip(round(CENTRE - com_y), 0, SIZE - height))
    left = int(np.clip(round(CENTRE - com_x), 0, SIZE - width))
    field = np.zeros((SIZE, SIZE), dtype=np.float32)
    field[top : top + height, left : left + width] = patch
    return field


def to_mnist(gray: np.ndarray, invert: object = "auto") -> Tensor:
    """A grayscale image of any size -> (1, 28, 28) float tensor in [0, 1], like MNIST."""
    return torch.from_numpy(centre(fit_box(ink_of(gray, invert))))[None]


def load_digit(path: Path, invert: object = "auto") -> Tensor:
    """Read and convert one image file; ImageFileError names the file if it can't be used."""
    gray = read_gray(path)
    try:
        return to_mnist(gray, invert)
    except ValueError as e:
        raise ImageFileError(f"{path}: {e}") from None


def image_files(paths: list[str]) -> list[Path]:
    """The files to predict: each path as given, or a folder's image files, sorted.

    Named files, and folders that hold no image, are kept, so each gets its own error.
    """
    if not paths:
        raise CnnlabError("images=[]: no images given (images=<file, folder or [a.png,b.jpg]>)")
    files: list[Path] = []
    for path in map(Path, paths):
        found = []
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found or [path]
    return list(dict.fromkeys(files))  # a file named twice is predicted once
