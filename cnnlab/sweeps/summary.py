"""How every sweep starts in a directory of its own and ends with its leaderboard and an honest
exit status.

At the start (``check_resume`` and ``start_sweep``, called by cnnlab's sweepers once every
trial is checked, before anything is written): a resume must name an existing sweep and be
that sweep's; a SLURM sweep is checked with SLURM (``cnnlab.sweeps.slurm``); the sweep directory
is claimed (an ``flock`` held for the sweep's life, as single runs hold theirs), and refused if
another sweep uses it or if it already holds a sweep and this is not ``resume=`` of it; and a
signal stops the whole sweep from then on (``cnnlab.signals.stop_sweep_on_signals``). A failed
trial records its error and returns, so the sweep goes on; once all trials are done, whatever
the launcher, the ``SweepSummary`` callback writes and prints the leaderboard and exits 1 if
any trial did not finish. Hydra catches ``Exception`` from callbacks (and only warns), so
errors there leave through ``SystemExit``.

A signal stops the whole sweep, whatever the launcher: no further trial trains, the running
ones save their checkpoints and are recorded "interrupted", the leaderboard is written, and the
sweep exits 128 + the signal's number with one line: the command that resumes it
(``resume=<sweep dir>`` finishes exactly the trials that did not finish).

- Trials in this process (Hydra's basic launcher; cnnlab's Optuna sweeper on it): during a
  trial, the run's own handlers take the signal (``StopOnSignal``: a checkpoint at the next
  batch), and ``cnnlab.train`` then raises ``SweepInterrupted`` out of Hydra's loop; between
  trials, the sweep's handler raises it at once. ``cnnlab.train`` ends it (``end_interrupted``).
- Trials in worker processes (``launcher=joblib``): the sweep's handler marks the sweep as
  stopping; the workers ignore signals (``workers_ignore_signals``), their trials take the
  mark as a signal of their own, save, record and return; Hydra's loop ends, and
  ``SweepSummary`` gives the sweep's exit (``end_of_sweep``).
- Submitit's launchers keep their own ways (SLURM's preemption and requeue; jobs on a cluster
  outlive the command that submitted them).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from joblib.parallel import LokyBackend, register_parallel_backend
from omegaconf import DictConfig

from cnnlab.errors import say
from cnnlab.runs.checks import ConfigError
from cnnlab.runs.results import DONE
from cnnlab.runs.resume import sweep_resume_command
from cnnlab.runs.run_dir import RunDirLock, claim_dir
from cnnlab.runs.swept import MULTIRUN_FILE, check_same_sweep
from cnnlab.runs.training import report
from cnnlab.signals import (
    SweepInterrupted,
    clear_stopping,
    hand_on_to_submitit,
    holding_signals,
    ignore_signals,
    stop_sweep_on_signals,
    stopping,
)
from cnnlab.sweeps.leaderboard import summarize, trial_dirs
from cnnlab.sweeps.slurm import check_submission, is_slurm

# The sweep directory's lock, held for the process's life; not on the callback, which Hydra's
# joblib launcher pickles to its workers along with the config.
HELD: list[RunDirLock | None] = []


def start_sweep(config: DictConfig) -> None:
    """What a sweeper does once its trials are checked, before it writes or submits anything:
    check a SLURM sweep with SLURM, claim the sweep directory, and from then on stop the whole
    sweep on a signal (``cnnlab.signals.stop_sweep_on_signals``)."""
    sweep_dir = Path(config.hydra.sweep.dir)
    if is_slurm(config.hydra.launcher):  # first: asking SLURM writes nothing
        check_submission(config.hydra.launcher)
    HELD.append(claim_dir(sweep_dir, bool(config.get("resume")), "sweep",
                          holds_a_sweep(sweep_dir)))  # fmt: skip
    clear_stopping(sweep_dir)  # a stop that a killed sweep left behind
    launcher = config.hydra.launcher
    if is_joblib(launcher):
        workers_ignore_signals()
    if in_process(launcher) or is_joblib(launcher):  # submitit's launchers keep their own ways
        stop_sweep_on_signals(sweep_dir, trials_in_process=in_process(launcher))
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


def in_process(launcher: DictConfig) -> bool:
    """Whether the launcher runs trials in this process (Hydra's basic launcher)."""
    return str(launcher.get("_target_", "")).endswith(".BasicLauncher")


def is_joblib(launcher: DictConfig) -> bool:
    """Whether the launcher is Hydra's joblib launcher (trials in loky's worker processes)."""
    return "joblib" in str(launcher.get("_target_", ""))


def workers_ignore_signals() -> None:
    """Joblib's workers (Hydra's launcher asks for its "loky" backend) start by ignoring
    SIGINT and SIGTERM (``cnnlab.signals.ignore_signals``): a signal to the process group then
    stops the sweep as one to this process does, through the sweep's mark."""
    register_parallel_backend("loky", partial(LokyBackend, initializer=ignore_signals))


def end_of_trial(record: dict[str, Any]) -> float | None:
    """A sweep trial's end, in the process that ran it: its summary (a stopped sweep says it
    once, at its end); a trial SLURM asked to requeue hands the signal on to submitit, which
    requeues the job and exits; an interrupted trial in this process stops the sweep. Otherwise
    the sweep goes on, and its leaderboard reports a trial that did not finish (exit 1)."""
    interrupted = record["status"] == "interrupted" and not record.get("requeued")
    if not interrupted:
        report(record)
    if record.get("requeued"):
        hand_on_to_submitit()
    hydra = HydraConfig.get()
    if interrupted and in_process(hydra.launcher):
        raise SweepInterrupted(record["exit_code"] - 128, Path(hydra.sweep.dir))
    return record["val/acc"] if record["status"] in DONE else None


def write_final_leaderboard(sweep_dir: Path, write: Callable[[Path], int] = summarize) -> int:
    """Every trial has returned: ``write`` the leaderboard (``summarize``) whatever signal comes,
    since none has a trial left to stop; one that came meanwhile is reported after the
    leaderboard is whole, in one line, exit 128 + its number (``holding_signals``)."""
    with holding_signals() as held:
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
    ignore_signals()  # the leaderboard is written whatever comes next
    clear_stopping(stop.sweep_dir)
    summarize(stop.sweep_dir, report_failures=False)
    name = signal.Signals(stop.signum).name
    say(
        f"the sweep stopped by {name}; its unfinished trials continue with: "
        f"{sweep_resume_command(stop.sweep_dir)}",
        "interrupted",
    )
    sys.exit(128 + stop.signum)
