"""Real images written as files for the folder tests: MNIST's or Fashion-MNIST's test images saved
as PNG class folders (torchvision's ImageFolder layout), grey at 28x28 or tinted colour at 32x32,
and the odd files a learner's folder holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data.idx_files import IdxImages
from tests.helpers import DATA_DIR

TINTS = [(255, 80, 80), (80, 255, 80), (80, 80, 255), (255, 255, 80), (255, 80, 255)]


def write_folder(
    root: Path,
    dataset: IdxImages,
    per_class: int,
    names: list[str] | None = None,
    colour: bool = False,
    start: int = 0,
) -> list[tuple[Path, int]]:
    """``per_class`` test images of each class as ``root/<name>/<i>.png`` (from image
    ``start`` on); colour ones tinted per image and 32x32. The files and their labels."""
    images, labels = dataset.load(DATA_DIR, train=False)
    names = names or [str(c) for c in range(dataset.num_classes)]
    written, counts = [], dict.fromkeys(range(len(names)), 0)
    for index in range(start, len(labels)):
        label = int(labels[index])
        if counts[label] == per_class:
            continue
        counts[label] += 1
        path = root / names[label] / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image_of(images[index, 0].numpy(), colour, index).save(path)
        written.append((path, label))
        if all(n == per_class for n in counts.values()):
            break
    return written


def image_of(pixels: np.ndarray, colour: bool, index: int) -> Image.Image:
    """A grey 28x28 image as it is, or tinted (its ink in one of TINTS) and resized to 32x32."""
    if not colour:
        return Image.fromarray(pixels)
    tint = np.array(TINTS[index % len(TINTS)], dtype=np.float32) / 255
    rgb = (pixels[..., None].astype(np.float32) * tint).astype(np.uint8)
    return Image.fromarray(rgb).resize((32, 32), Image.Resampling.BILINEAR)


def add_odd_files(root: Path) -> dict[str, Path]:
    """The odd files of a learner's folder, in its first class folder: a truncated PNG, a text
    file, an image in each of the modes P, I;16, CMYK, LA and RGBA, another size, a JPEG.
    Which are which."""
    first = sorted(p for p in root.iterdir() if p.is_dir())[0]
    source = sorted(first.glob("*.png"))[0]
    image = Image.open(source).convert("L")
    odd = {"truncated": first / "truncated.png", "text": first / "notes.txt"}
    odd["truncated"].write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    odd["text"].write_text("not an image\n")
    for mode, suffix in (("P", "png"), ("I;16", "png"), ("CMYK", "jpg"), ("LA", "png"),
                         ("RGBA", "png")):  # fmt: skip
        path = first / f"mode-{mode.replace(';', '')}.{suffix}"
        converted = image.convert("RGB").convert(mode) if mode in ("P", "CMYK") else (
            image.convert("I").point(lambda v: v * 256).convert("I;16") if mode == "I;16"
            else image.convert(mode))  # fmt: skip
        converted.save(path)
        odd[mode] = path
    odd["larger"] = first / "larger.bmp"
    image.resize((40, 40)).save(odd["larger"])
    odd["jpeg"] = first / "photo.jpeg"
    image.save(odd["jpeg"], quality=95)
    return odd
