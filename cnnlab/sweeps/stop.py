"""A signal stops the whole sweep, whatever the launcher: no further trial trains, the running
ones save their checkpoints and are recorded "interrupted", the leaderboard is written, and the
sweep exits 128 + the signal's number with one line: the command that resumes it
(``resume=<sweep dir>`` finishes exactly the trials that did not finish).

- Trials in this process (Hydra's basic launcher; cnnlab's Optuna sweeper on it): during a
  trial, the run's own handlers take the signal (``StopOnSignal``: a checkpoint at the next
  batch), and ``cnnlab.train`` then raises ``SweepInterrupted`` out of Hydra's loop; between
  trials, the sweep's handler (``stop_on_signals``) raises it at once.
- Trials in worker processes (``launcher=joblib``): the sweep's handler marks the sweep as
  stopping (``cnnlab.callbacks.sweep_stop``), which the running trials see within half a
  second and take as a signal of their own (a terminal's Ctrl-C reaches them anyway), and a
  trial that starts now does not train. The trials save, record and return; Hydra's loop
  ends, and ``end_of_sweep`` gives the sweep's exit. Asked twice, the sweep stops at once.
- Submitit's launchers keep their own ways (SLURM's preemption and requeue; jobs on a cluster
  outlive the command that submitted them).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import NoReturn

from joblib.parallel import LokyBackend, register_parallel_backend
from omegaconf import DictConfig

from cnnlab.callbacks.sweep_stop import clear_stopping, mark_stopping, stopping
from cnnlab.errors import ignore_signals, say
from cnnlab.runs.resume import sweep_resume_command
from cnnlab.sweeps.leaderboard import summarize

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
Handler = Callable[[int, FrameType | None], None]  # a signal handler


class SweepInterrupted(BaseException):
    """The sweep stops: raised through Hydra's loop (a BaseException, as KeyboardInterrupt is,
    so that no ``except Exception`` on the way records it as a failed trial)."""

    def __init__(self, signum: int, sweep_dir: Path) -> None:
        super().__init__(signum)
        self.signum, self.sweep_dir = signum, sweep_dir


def in_process(launcher: DictConfig) -> bool:
    """Whether the launcher runs trials in this process (Hydra's basic launcher)."""
    return str(launcher.get("_target_", "")).endswith(".BasicLauncher")


def stop_on_signals(sweep_dir: Path, launcher: DictConfig) -> None:
    """Install the sweep's handlers for its launcher (none for submitit's)."""
    if in_process(launcher):
        handler = _raise_now(sweep_dir)
    elif "joblib" in str(launcher.get("_target_", "")):
        handler = _stop_workers(sweep_dir)
        _workers_ignore_signals()
    else:
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


def _workers_ignore_signals() -> None:
    """Joblib's workers (Hydra's launcher asks for its "loky" backend) start by ignoring
    SIGINT and SIGTERM (``cnnlab.errors.ignore_signals``): a signal to the process group then
    stops the sweep as one to this process does, through the sweep's mark."""
    register_parallel_backend("loky", partial(LokyBackend, initializer=ignore_signals))


def _raise_now(sweep_dir: Path) -> Handler:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SweepInterrupted(signum, sweep_dir)

    return handler


def _stop_workers(sweep_dir: Path) -> Handler:
    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping(sweep_dir) is not None:  # asked twice: stop now
            raise SweepInterrupted(signum, sweep_dir)
        mark_stopping(sweep_dir, signum)

    return handler


def write_final_leaderboard(sweep_dir: Path, write: Callable[[Path], int] = summarize) -> int:
    """Every trial has returned: ``write`` the leaderboard (``summarize``) whatever signal comes,
    since none has a trial left to stop. A signal that comes meanwhile is held, not raised (the
    sweep's handler would report unfinished trials that are not there), and reported after the
    leaderboard is whole: one line, exit 128 + its number. The holding handler stays for the
    few moments the process has left, so a second Ctrl-C cannot kill it without its line."""
    held: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: held.append(signum))
    status = write(sweep_dir)
    if held:
        name = signal.Signals(held[0]).name
        say(f"{name} while the sweep's leaderboard was written: every trial had returned, "
            f"and the leaderboard is complete", "interrupted")  # fmt: skip
        sys.exit(128 + held[0])
    return status


def end_of_sweep(sweep_dir: Path) -> None:
    """After Hydra's loop: a sweep that a signal stopped ends as ``end_interrupted`` says."""
    if (signum := stopping(sweep_dir)) is not None:
        end_interrupted(SweepInterrupted(signum, sweep_dir))


def end_interrupted(stop: SweepInterrupted) -> NoReturn:
    """Write the leaderboard (the stopped trials in it as "interrupted"), say in one line how
    to resume, exit 128 + the signal's number."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # the leaderboard is written whatever comes next
    clear_stopping(stop.sweep_dir)
    summarize(stop.sweep_dir, report_failures=False)
    name = signal.Signals(stop.signum).name
    say(
        f"the sweep stopped by {name}; its unfinished trials continue with: "
        f"{sweep_resume_command(stop.sweep_dir)}",
        "interrupted",
    )
    sys.exit(128 + stop.signum)
