"""What a folder's files give (their headers, read by ``cnnlab.data.scan``; their decoded images,
``cnnlab.data.folder``), cached under ``paths.data_dir`` so that a second run (or a sweep's next
trial) opens no image file to learn it again.

The key is every file's path, size and modification time, and what the files are read as (the
channels and size decoded to): change, add or remove one image and the folder is read again. A
cache file is written to a temporary name and renamed into place under a file lock, so parallel
sweep trials read once and never load a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from filelock import FileLock

from cnnlab.errors import say

VERSION = 2  # bump when what is cached, or how it is read, changes
T = TypeVar("T")


def cache_path(data_dir: Path, name: str, paths: list[Path], read_as: str) -> Path:
    """``<data_dir>/folders/<name>-<digest>.pt``: the digest of what the cached value depends
    on, the files as they are now and ``read_as``."""
    digest = hashlib.sha256(f"{VERSION} {read_as}".encode())
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # vanished since the scan: it is read (and fails) as it is now
            stat = None
        digest.update(f"\0{path}\0{stat and stat.st_size}\0{stat and stat.st_mtime_ns}".encode())
    return data_dir / "folders" / f"{name}-{digest.hexdigest()[:32]}.pt"


def cached(path: Path, make: Callable[[], T], verb: str, what: str | None) -> tuple[T, str]:
    """The value cached at ``path`` (or ``make()``'s, then cached) and a phrase saying which
    it was (``verb``: what ``make`` does, "decoded"). A cache that can't be written costs a
    warning naming ``what`` ("decoded images"), not the run; None: no warning (the headers':
    the scan runs while the config is read, before a bad data directory's own one line)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock")
        lock.acquire()
    except OSError as e:
        if what:
            say(f"cannot cache {what} in {path.parent} ({e}); {verb} again each run", "warning")
        return make(), f"{verb} (not cached)"
    try:
        if path.is_file():
            return torch.load(path, weights_only=True), f"from the cache {path}"
        started = time.perf_counter()
        value = make()
        took = f"{verb} in {time.perf_counter() - started:.1f} s"
        try:
            write_atomically(path, value)
        except OSError as e:
            if what:
                say(f"cannot write the cache {path} ({e}); {what} {verb} again each run",
                    "warning")  # fmt: skip
            return value, f"{took} (not cached)"
        return value, f"{took} and cached at {path}"
    finally:
        lock.release()


def write_atomically(path: Path, value: object) -> None:
    """Save to a temporary file beside ``path``, then rename it into place."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(handle)
    try:
        torch.save(value, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
