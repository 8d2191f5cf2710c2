"""Fashion-MNIST's files: Zalando's clothing images in MNIST's format, from torchvision's
mirrors or, offline, from Debian.

Sources, tried in order after the files already there: torchvision's official download (needs
the internet) -> Debian's ``dataset-fashion-mnist`` package where it is installed
(``/usr/share/datasets/fashion-mnist``) -> the same package from Debian's archive (offline
machines still reach it), its SHA-256 pinned as Debian's archive index records it, unpacked
here without installing anything. Each IDX file is checked against the canonical MD5s (the ones
torchvision's FashionMNIST lists for the uncompressed files). What the classes are called is
the data config's (``conf/data/fashion_mnist.yaml``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from cnnlab.data.idx_files import FILES, DataFetchError, IdxImages, fetch_with_torchvision

INSTALLED = Path("/usr/share/datasets/fashion-mnist")  # where Debian's package puts the files
DEB_URL = ("http://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/"
           "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb")  # fmt: skip
DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
DEB_MEMBERS = "./usr/share/datasets/fashion-mnist/"


class FashionMNIST(IdxImages):
    """Zalando's Fashion-MNIST: 60,000 + 10,000 grayscale 28x28 images of 10 kinds of clothing."""

    name = "FashionMNIST"
    md5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }
    fetch_bytes = 90 * 2**20  # the four IDX files (55 MB) and the package (31 MB) while building

    def sources(self) -> dict[str, Callable[[Path], None]]:
        return {
            "torchvision download": fetch_with_torchvision("FashionMNIST"),
            f"Debian package ({INSTALLED})": copy_installed,
            "Debian archive": fetch_debian_package,
        }


def copy_installed(dest: Path) -> None:
    """Unzip the files of the installed Debian package."""
    for name in FILES:
        (dest / name).write_bytes(gzip.decompress((INSTALLED / f"{name}.gz").read_bytes()))


def fetch_debian_package(dest: Path) -> None:
    """Download the Debian package, check its SHA-256 and unzip its four files from it."""
    print("FashionMNIST: downloading dataset-fashion-mnist from Debian (31 MB)", file=sys.stderr)
    with urllib.request.urlopen(DEB_URL, timeout=60) as response:
        deb = response.read()
    if (digest := hashlib.sha256(deb).hexdigest()) != DEB_SHA256:
        raise DataFetchError(f"{DEB_URL} has SHA-256 {digest}, expected {DEB_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(ar_member(deb, "data.tar"))) as files:
        for name in FILES:
            packed = files.extractfile(f"{DEB_MEMBERS}{name}.gz")
            if packed is None:
                raise DataFetchError(f"the Debian package holds no {name}.gz")
            (dest / name).write_bytes(gzip.decompress(packed.read()))


def ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ``ar`` archive (a .deb is one) whose name starts with ``prefix``:
    after the 8-byte magic, each member is a 60-byte header (name, ..., size) and its bytes,
    padded to an even length."""
    if not archive.startswith(b"!<arch>\n"):
        raise DataFetchError("not a Debian package (no ar archive)")
    at = 8
    while at + 60 <= len(archive):
        name, size = archive[at : at + 16].decode().strip(), int(archive[at + 48 : at + 58])
        if name.startswith(prefix):
            return archive[at + 60 : at + 60 + size]
        at += 60 + size + size % 2
    raise DataFetchError(f"the Debian package holds no {prefix}*")
