"""One run per run directory: a directory in use, or already holding a run, is refused.

Two runs pointed at the same ``hydra.run.dir`` would mix their files (one run's result.json
beside the other's last.ckpt). The claim is made before Hydra starts, because Hydra writes the
directory's ``.hydra/`` files first thing. The lock is an ``flock`` on the directory itself: no
lock file (a refused resume leaves the run byte for byte as it was), and the kernel drops it
when the process ends, however it ends, so a killed run leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cnnlab.runs.checks import ConfigError


class RunDirLock:
    """An exclusive ``flock`` on a directory, held while this object lives."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        os.close(self.fd)


def claim_run_dir(run_dir: Path, resuming: bool) -> RunDirLock | None:
    """Lock ``run_dir`` (made if missing) for this process's life; ConfigError if another run
    holds it, or if it already holds a run and this is not a resume of it. None where it cannot
    be made (a read-only place: the run then fails on its first write, with its own line)."""
    holds_a_run = any((run_dir / name).exists() for name in ("result.json", ".hydra"))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    if not os.access(run_dir, os.W_OK):
        os.close(fd)
        raise ConfigError(f"hydra.run.dir={run_dir}: read-only; a run (or a resume) writes "
                          "there: copy the run somewhere writable first")  # fmt: skip
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"hydra.run.dir={run_dir}: another cnnlab run is using this directory"
        ) from None
    if holds_a_run and not resuming:
        os.close(fd)
        raise ConfigError(
            f"hydra.run.dir={run_dir}: already holds a run; resume=<that dir> continues it, "
            "or choose another directory"
        )
    return RunDirLock(fd)
