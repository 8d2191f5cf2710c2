"""One run per run directory: a directory in use, or already holding a run, is refused.

Two runs pointed at the same ``hydra.run.dir`` would mix their files (one run's result.json
beside the other's last.ckpt). A directory holds a run once one began: its config passed the
checks (``config.yaml`` is written then) or it saved a checkpoint. A run refused at start-up,
or stopped while Hydra was still writing its ``.hydra/`` files, never began: the same command
reuses its directory. The claim is made before Hydra writes the directory's ``.hydra/``
files, which it does first thing (``cnnlab.runs.run_start``). The lock is an ``flock`` on the
directory itself: no lock file (a refused resume leaves the run byte for byte as it was), and
the kernel drops it when the process ends, however it ends, so a killed run leaves no stale
lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cnnlab.runs.checks import ConfigError


class RunDirLock:
    """An exclusive ``flock`` on a directory, held while this object lives (in the process that
    took it: a copy in another process, pickled along with a config, closes nothing)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pid = fd, os.getpid()

    def __del__(self) -> None:
        if os.getpid() == self.pid:
            os.close(self.fd)


def claim_run_dir(run_dir: Path, resuming: bool) -> RunDirLock | None:
    """Lock ``run_dir`` (made if missing) for this process's life; ConfigError if another run
    holds it, or if it already holds a run and this is not a resume of it. None where it cannot
    be made (a read-only place: the run then fails on its first write, with its own line)."""
    return claim_dir(run_dir, resuming, "run", began(run_dir))


def claim_dir(path: Path, resuming: bool, kind: str, holds_one: bool) -> RunDirLock | None:
    """``claim_run_dir`` for a ``kind`` of directory, "run" or "sweep" (``hydra.<kind>.dir``),
    which ``holds_one`` of its kind already or not."""
    key = f"hydra.{kind}.dir={path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileExistsError, NotADirectoryError):  # it, or a folder above it, is a file
        file = next(p for p in (path, *path.parents) if p.exists() and not p.is_dir())
        raise ConfigError(f"{key}: {file} is a file, not a directory") from None
    except OSError:  # the writes that follow name what cannot be written
        return None
    if not os.access(path, os.W_OK):
        os.close(fd)
        raise ConfigError(f"{key}: read-only; a {kind} (or a resume) writes there: copy the "
                          f"{kind} somewhere writable first")  # fmt: skip
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{key}: another cnnlab {kind} is using this directory") from None
    if holds_one and not resuming:
        os.close(fd)
        raise ConfigError(
            f"{key}: already holds a {kind}; resume=<that dir> continues it, or choose "
            "another directory"
        )
    return RunDirLock(fd)


def began(run_dir: Path) -> bool:
    """Whether a run began in ``run_dir``: its config was checked and saved, or it saved a
    checkpoint."""
    return (run_dir / "config.yaml").is_file() or (run_dir / "checkpoints").is_dir()
