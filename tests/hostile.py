"""Helpers for tests of bad input: a pickle that would run code, and cnnlab's one error line."""

from __future__ import annotations

import os
from pathlib import Path


class Exploit:
    """Unpickling this would run a shell command that creates ``marker``: safe loading must not."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def one_error(stderr: str) -> str:
    """The single ``cnnlab: error:`` line of a failed command (and no traceback)."""
    errors = [line for line in stderr.splitlines() if line.startswith("cnnlab: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]
