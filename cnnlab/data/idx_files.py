"""Image datasets stored as IDX files (MNIST's format), fetched once into torchvision's
``<data dir>/<Name>/raw`` layout, every file verified by MD5.

A dataset (``cnnlab.data.mnist``, ``cnnlab.data.fashion_mnist``) says what its files are (their
canonical MD5s), what its images are (channels, side, sizes, classes) and where they can come
from; this module does the rest. Sources are tried in order after the files already there; each
writes into a private temporary folder, and only verified files are moved into place, under a
file lock, so parallel sweep jobs never see or leave a partial file.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from cnnlab.errors import CnnlabError

# the four files, in the order write_idx_files takes the arrays
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # fmt: skip


class DataFetchError(CnnlabError):
    """A dataset could not be put in place from any source."""


class IdxImages:
    """A dataset of IDX files; subclasses fill in the class attributes and ``sources``."""

    name: ClassVar[str]  # torchvision's folder name, e.g. "MNIST"
    md5: ClassVar[dict[str, str]]  # canonical MD5 of each uncompressed IDX file in FILES
    channels: ClassVar[int] = 1
    image_size: ClassVar[int] = 28
    num_classes: ClassVar[int] = 10
    train_size: ClassVar[int] = 60_000
    fetch_bytes: ClassVar[int]  # disk space a fetch needs while it runs

    def sources(self) -> dict[str, Callable[[Path], None]]:
        """Where the files can come from, in order: each writes FILES into the folder given."""
        raise NotImplementedError

    def raw_dir(self, data_dir: str | Path) -> Path:
        return Path(data_dir) / self.name / "raw"

    def invalid_files(self, folder: Path) -> list[str]:
        """Names of the IDX files in ``folder`` that are missing or fail their MD5."""
        return [name for name, md5 in self.md5.items()
                if not (folder / name).is_file() or file_digest(folder / name) != md5]  # fmt: skip

    def prepare(self, data_dir: str | Path) -> Path:
        """Make sure the verified IDX files are in ``raw_dir(data_dir)``; return that folder."""
        raw = self.raw_dir(data_dir)
        if raw.is_dir() and not self.invalid_files(raw):
            return raw  # verified without the lock, so a read-only shared copy works too
        try:
            raw.mkdir(parents=True, exist_ok=True)
            lock = FileLock(raw / ".lock")
            lock.acquire()
        except OSError as e:
            raise DataFetchError(f"data directory {raw} is not writable ({e})") from e
        try:
            self._fetch_missing(raw)
        finally:
            lock.release()
        return raw

    def load(self, data_dir: str | Path, train: bool) -> tuple[Tensor, Tensor]:
        """A split as uint8 images (N, channels, side, side) and int64 class indices."""
        prefix = "train" if train else "t10k"
        raw = self.raw_dir(data_dir)
        images = torch.from_numpy(read_idx(raw / f"{prefix}-images-idx3-ubyte").copy())
        labels = torch.from_numpy(read_idx(raw / f"{prefix}-labels-idx1-ubyte").copy())
        return images.view(
            len(images), self.channels, self.image_size, self.image_size
        ), labels.long()

    def _fetch_missing(self, raw: Path) -> None:
        bad = self.invalid_files(raw)
        if not bad:
            return
        say = f"{self.name}: {len(bad)} of 4 files missing or corrupt in {raw}; fetching"
        print(say, file=sys.stderr)
        self._check_room(raw)
        tried = []
        for name, fetch in self.sources().items():
            try:
                with tempfile.TemporaryDirectory(dir=raw, prefix=".fetch-") as tmp:
                    fetch(Path(tmp))
                    self._install_verified(Path(tmp), raw, bad)
                return
            except Exception as e:  # each source may fail in its own way; report them all
                tried.append(f"{name}: {' '.join(str(e).split())[:200] or type(e).__name__}")
                print(f"{self.name}: source {name} failed ({tried[-1]})", file=sys.stderr)
        raise DataFetchError(f"could not fetch {self.name} into {raw}; tried " + "; ".join(tried))

    def _check_room(self, raw: Path) -> None:
        """Fail with one line, before any download, if the fetch cannot fit on the data disk."""
        free, mb = shutil.disk_usage(raw).free, 2**20
        if free < self.fetch_bytes:
            raise DataFetchError(
                f"data directory {raw} has {free / mb:.1f} MB free, fetching {self.name} needs "
                f"about {self.fetch_bytes / mb:.0f} MB; free some space or set CNNLAB_DATA_DIR"
            )

    def _install_verified(self, src: Path, raw: Path, names: list[str]) -> None:
        """Move ``names`` from ``src`` into ``raw`` once every one of them passes its MD5."""
        wrong = self.invalid_files(src)
        if wrong := [n for n in names if n in wrong]:
            raise DataFetchError(f"MD5 mismatch or missing after fetch: {', '.join(wrong)}")
        for name in names:
            (src / name).replace(raw / name)  # same filesystem: an atomic rename


def fetch_with_torchvision(dataset: str) -> Callable[[Path], None]:
    """A source: torchvision's own download of ``dataset`` (official mirrors; fails fast
    without the internet)."""

    def fetch(dest: Path) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, dataset)(root=str(dest), download=True)
        for name in FILES:
            shutil.move(dest / dataset / "raw" / name, dest / name)

    return fetch


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_idx_files(dest: Path, *arrays: np.ndarray) -> None:
    """Write train images, train labels, test images, test labels as big-endian IDX files."""
    for name, array in zip(FILES, arrays, strict=True):
        header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes()
        (dest / name).write_bytes(header + array.tobytes())


def read_idx(path: Path) -> np.ndarray:
    """Read a uint8 IDX file (images or labels) into an array of its stored shape."""
    data = path.read_bytes()
    ndim = data[3]
    shape = np.frombuffer(data, ">i4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
