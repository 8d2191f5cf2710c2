"""How every sweep starts in a directory of its own and ends with its leaderboard and an honest
exit status.

At the start (``check_resume`` and ``start_sweep``, called by cnnlab's sweepers once every
trial is checked, before anything is written): a resume must name an existing sweep and be
that sweep's; a SLURM sweep is checked with SLURM (``cnnlab.sweeps.slurm``); the sweep directory
is claimed (an ``flock`` held for the sweep's life, as single runs hold theirs), and refused if
another sweep uses it or if it already holds a sweep and this is not ``resume=`` of it; and a
signal stops the whole sweep from then on (``cnnlab.sweeps.stop``). A failed trial records its
error and returns, so the sweep goes on; once all trials are done, whatever the launcher, the
``SweepSummary`` callback writes and prints the leaderboard and exits 1 if any trial did not
finish. Hydra catches ``Exception`` from callbacks (and only warns), so errors there leave
through ``SystemExit``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.callbacks.sweep_stop import clear_stopping
from cnnlab.runs.checks import ConfigError
from cnnlab.runs.run_dir import RunDirLock, claim_dir
from cnnlab.runs.swept import MULTIRUN_FILE, check_same_sweep
from cnnlab.sweeps.leaderboard import trial_dirs
from cnnlab.sweeps.slurm import check_submission, is_slurm
from cnnlab.sweeps.stop import end_of_sweep, stop_on_signals, write_final_leaderboard

# The sweep directory's lock, held for the process's life; not on the callback, which Hydra's
# joblib launcher pickles to its workers along with the config.
HELD: list[RunDirLock | None] = []


def start_sweep(config: DictConfig) -> None:
    """What a sweeper does once its trials are checked, before it writes or submits anything:
    check a SLURM sweep with SLURM, claim the sweep directory, and from then on stop the whole
    sweep on a signal (``cnnlab.sweeps.stop``)."""
    sweep_dir = Path(config.hydra.sweep.dir)
    if is_slurm(config.hydra.launcher):  # first: asking SLURM writes nothing
        check_submission(config.hydra.launcher)
    HELD.append(claim_dir(sweep_dir, bool(config.get("resume")), "sweep",
                          holds_a_sweep(sweep_dir)))  # fmt: skip
    clear_stopping(sweep_dir)  # a stop that a killed sweep left behind
    stop_on_signals(sweep_dir, config.hydra.launcher)
    print(f"Sweep directory: {sweep_dir}", flush=True)


def check_resume(config: DictConfig) -> None:
    """``resume=<sweep dir>``: that directory exists and this command is that sweep's."""
    resume = config.get("resume")
    if resume and not Path(resume).is_dir():
        raise ConfigError(f"resume={resume}: no such sweep directory")
    check_same_sweep(config)


class SweepSummary(Callback):
    """Ends every sweep, whatever its sweeper and launcher (cnnlab's sweepers start it:
    ``check_resume``, ``start_sweep``)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        end_of_sweep(sweep_dir)  # a sweep a signal stopped exits there
        status = write_final_leaderboard(sweep_dir)
        if status:
            sys.exit(status)


def holds_a_sweep(sweep_dir: Path) -> bool:
    """Whether a sweep already ran in ``sweep_dir``: its definition or a trial is there."""
    return (sweep_dir / MULTIRUN_FILE).is_file() or (
        sweep_dir.is_dir() and bool(trial_dirs(sweep_dir))
    )
