"""Whether the sweep a trial belongs to is stopping: a signal reached the sweep while its trials
run in processes of their own (``cnnlab.sweeps.stop``), which marks its directory. A running
trial stops as a signal would stop it (``StopOnSignal`` looks twice a second); a trial
starting now does not train."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

STOPPING = ".stopping"  # in the sweep directory: the number of the signal that stops it


def mark_stopping(sweep_dir: Path, signum: int) -> None:
    (sweep_dir / STOPPING).write_text(f"{signum}\n")


def stopping(sweep_dir: Path) -> int | None:
    """The signal that is stopping the sweep in ``sweep_dir``, None if it is not stopping."""
    try:
        return int((sweep_dir / STOPPING).read_text())
    except (OSError, ValueError):
        return None


def clear_stopping(sweep_dir: Path) -> None:
    (sweep_dir / STOPPING).unlink(missing_ok=True)


def sweep_of_trial() -> Path | None:
    """The sweep directory of the trial this process runs; None outside a sweep."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return None
