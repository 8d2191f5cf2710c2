"""Writing a file so that its old version survives any failure: a full disk, a kill, a crash.

The new bytes go to a temporary file in the same directory, are flushed to the disk (fsync),
and only then renamed over the old file, which POSIX makes atomic within one file system.
Lightning's own atomic save stages the file in ``$TMPDIR`` and moves it, which across file
systems is a copy over the old file: a full disk then leaves it truncated.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cnnlab.errors import CnnlabError


class WriteError(CnnlabError):
    """A file that could not be written (full disk, read-only place); its old version is kept."""

    exit_code = 1


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then put it in ``path``'s place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise WriteError(f"{path}: cannot write ({e.strerror or e}){kept}") from None
    finally:
        with contextlib.suppress(OSError):  # only still there if the write failed
            tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode()))


def write_csv_atomically(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """``rows`` as a CSV file with a header of ``columns`` (other keys of a row left out)."""
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, table.getvalue())


def write_bytes_atomically(path: Path, data: bytes | memoryview) -> None:
    write_atomically(path, lambda f: f.write(data))
