"""A folder's decoded images, cached under ``paths.data_dir`` so that a second run (or a sweep's
next trial) skips decoding.

The key is every file's path, size and modification time, and the channels and size decoded to:
change, add or remove one image and the folder is decoded again. The cache file is written to a
temporary name and renamed into place under a file lock, so parallel sweep trials decode once and
never read a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock

from cnnlab.data.scan import Scanned
from cnnlab.errors import say

VERSION = 1  # bump when what is cached, or how it is decoded, changes
Decoded = dict[str, object]  # {"images": uint8 (N, C, H, W), "good": bool (N), "errors": [str]}


def cache_key(scanned: Scanned, channels: int, size: int) -> str:
    """A digest of what the decoded images depend on."""
    digest = hashlib.sha256(f"{VERSION} {channels} {size}".encode())
    for path in scanned.paths:
        try:
            stat = path.stat()
        except OSError:  # vanished since the scan: it is decoded (and fails) as it is now
            stat = None
        digest.update(f"\0{path}\0{stat and stat.st_size}\0{stat and stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def cached(
    data_dir: Path, scanned: Scanned, channels: int, size: int, decode: Callable[[], Decoded]
) -> tuple[Decoded, str]:
    """The decoded images (from the cache, or ``decode()`` then cached) and a phrase saying
    which it was. A cache that can't be written costs a warning, not the run."""
    folder = data_dir / "folders"
    path = folder / f"{scanned.root.name}-{cache_key(scanned, channels, size)}.pt"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock")
        lock.acquire()
    except OSError as e:
        say(f"cannot cache decoded images in {folder} ({e}); decoding each run", "warning")
        return decode(), "decoded (not cached)"
    try:
        if path.is_file():
            return torch.load(path, weights_only=True), f"from the cache {path}"
        started = time.perf_counter()
        decoded = decode()
        took = f"decoded in {time.perf_counter() - started:.1f} s"
        try:
            write_atomically(path, decoded)
        except OSError as e:
            say(f"cannot write the cache {path} ({e}); decoding each run", "warning")
            return decoded, f"{took} (not cached)"
        return decoded, f"{took} and cached at {path}"
    finally:
        lock.release()


def write_atomically(path: Path, decoded: Decoded) -> None:
    """Save to a temporary file beside ``path``, then rename it into place."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(handle)
    try:
        torch.save(decoded, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
