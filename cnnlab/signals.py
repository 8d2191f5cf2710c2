"""What Ctrl-C (SIGINT), SIGTERM and, on SLURM, SIGUSR2 do to a cnnlab command, in every phase.

Every signal handler cnnlab installs is here, but training's: that one is the ``StopOnSignal``
callback (``cnnlab.callbacks.signals``), which stops at the next batch with a checkpoint.
docs/robustness.md draws the whole picture; in short, by phase:

- start-up (imports, Hydra, the checks): ``exit_on_signals``, one line and exit 128 + n at once;
- a run outside training (the sanity check, testing, figures, result.json): while
  ``signals_stop_the_run`` holds, a signal raises ``Signalled``, which the run records as
  ``Interrupted`` (``as_interruption``);
- a sweep's parent: ``stop_sweep_on_signals`` (trials in this process: ``SweepInterrupted`` at
  once; in workers: the sweep is marked stopping, which their trials see);
- a sweep's worker: ``ignore_signals`` (only the sweep's mark stops its trials);
- the final leaderboard: ``holding_signals`` (reported after it is whole).

Imports only the standard library and ``cnnlab.errors``: every ``python -m cnnlab.<command>``
installs ``exit_on_signals`` before its heavy imports.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from cnnlab.errors import CnnlabError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REQUEUE_SIGNAL = signal.SIGUSR2  # submitit's signal on SLURM: time limit near, or preemption
STOPPING = ".stopping"  # in a sweep directory: the number of the signal that stops the sweep


def exit_on_signals() -> None:
    """A command's first act (``python -m cnnlab.<command>``, before its imports): until the
    work installs handlers of its own, SIGINT and SIGTERM end the command at once with one line
    and 128 + the signal's number, where Python would print a KeyboardInterrupt traceback from
    whatever was loading or starting. Never at import: a notebook keeps Python's Ctrl-C."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _exit_now)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    line = f"cnnlab: interrupted: stopped by {name} outside any training; nothing is lost\n"
    os.write(sys.stderr.fileno(), line.encode())
    os._exit(128 + signum)  # at once: no cleanup of a half-started command to get stuck in


def ignore_signals() -> None:
    """A parallel sweep's worker's first act (loky's initializer): a terminal's Ctrl-C, `timeout`
    and systemd signal the whole process group, workers included. Ignored, a worker is stopped
    only as the sweep decides (its trial's own handlers take the signal while it runs, then give
    it back to the ignoring); otherwise one between trials dies of SIGTERM, or KeyboardInterrupt
    lands wherever it is, and the sweep loses the trial's result and leaks loky's semaphores."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


# -- SLURM: submitit owns SIGTERM and SIGUSR2 in the jobs it starts ----------------------------


def in_submitit_job() -> bool:
    """Whether this process is a job submitit started (it sets SUBMITIT_EXECUTOR)."""
    return "SUBMITIT_EXECUTOR" in os.environ


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT, and SIGTERM except where submitit owns it."""
    return (signal.SIGINT,) if in_submitit_job() else STOP_SIGNALS


def noted_signals() -> tuple[signal.Signals, ...]:
    """The signals training notes and acts on at the next batch."""
    if in_submitit_job():
        return (*STOP_SIGNALS, REQUEUE_SIGNAL)
    return stop_signals()


def hand_on_to_submitit() -> None:
    """After a SIGUSR2 stop was recorded: raise it again for submitit's own handler (back in
    place), which requeues the job with its original arguments and exits the process."""
    signal.raise_signal(REQUEUE_SIGNAL)


# -- a run ---------------------------------------------------------------------------------


class Interrupted(CnnlabError):
    """A run stopped by a signal; the message says what was saved and how to go on (``resume``:
    the command that continues it, in Hydra's quoting: ``with_resume``, which the run calls
    with ``cnnlab.runs.resume.resume_command``; a sweep's trial names the sweep's)."""

    status = "interrupted"

    def __init__(
        self, signum: int, run_dir: Path, checkpoint: Path | None = None, resume: str = ""
    ) -> None:
        self.signum, self.run_dir, self.checkpoint = signum, run_dir, checkpoint
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        self.requeue = signum == REQUEUE_SIGNAL and in_submitit_job()
        super().__init__(self._message(resume))

    def with_resume(self, resume: str) -> Interrupted:
        """The same stop, its message naming ``resume`` as the command that continues it."""
        return Interrupted(self.signum, self.run_dir, self.checkpoint, resume)

    def _message(self, resume: str) -> str:
        name = signal.Signals(self.signum).name
        if self.requeue:
            return (
                f"stopped by {name} (SLURM: time limit near, or preemption); weights at that "
                f"moment saved to {self.checkpoint}; submitit requeues the trial, which "
                "continues from there"
            )
        last = self.run_dir / "checkpoints" / "last.ckpt"
        if self.checkpoint is not None:
            saved = f"weights at that moment saved to {self.checkpoint}"
        elif last.is_file():
            saved = f"{last} (the last finished epoch) is kept"
        elif not resume:
            return f"stopped by {name}; no epoch had finished, so nothing was saved; run the " \
                "command again"  # fmt: skip
        else:
            saved = "no epoch had finished, so nothing was saved"
        resume = resume or f"python -m cnnlab.train {shlex.quote(f'resume={self.run_dir}')}"
        return f"stopped by {name}; {saved}. Resume with: {resume}"


class Signalled(BaseException):
    """What the run-level handler raises: a BaseException, like KeyboardInterrupt, so that no
    library's ``except Exception`` on the way out (Lightning's logging has one) rewraps it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: FrameType | None) -> None:
    raise Signalled(signum)


@contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """Outside training (start-up, the sanity check, testing, figures), SIGINT and SIGTERM stop
    the run at once (``Signalled``, recorded as ``Interrupted``); during training
    ``StopOnSignal`` takes them over and stops at the next batch. Lightning calls this handler
    after its own SIGTERM bookkeeping."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python takes signal handlers in the main thread only (threaded sweeps)
        return
    previous = {s: signal.signal(s, _raise_signalled) for s in stop_signals()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def as_interruption(exc: BaseException, run_dir: Path) -> BaseException:
    """A signal's ways out of a run, as ``Interrupted``: ``Signalled`` from the run-level
    handler, Lightning's ``SIGTERMException`` (a ``SystemExit``) for SIGTERM, and its
    ``exit(1)`` after it caught a KeyboardInterrupt (Ctrl-C twice). Anything else is returned
    as it is."""
    if isinstance(exc, Signalled):
        return Interrupted(exc.signum, run_dir)
    if type(exc).__name__ == "SIGTERMException":  # Lightning's; not imported here (see above)
        return Interrupted(signal.SIGTERM, run_dir)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return Interrupted(signal.SIGINT, run_dir)
    return exc


# -- a sweep -------------------------------------------------------------------------------


class SweepInterrupted(BaseException):
    """The sweep stops: raised through Hydra's loop (a BaseException, as KeyboardInterrupt is,
    so that no ``except Exception`` on the way records it as a failed trial)."""

    def __init__(self, signum: int, sweep_dir: Path) -> None:
        super().__init__(signum)
        self.signum, self.sweep_dir = signum, sweep_dir


def mark_stopping(sweep_dir: Path, signum: int) -> None:
    """Mark the sweep as stopping: its trials in other processes look for the mark."""
    (sweep_dir / STOPPING).write_text(f"{signum}\n")


def stopping(sweep_dir: Path) -> int | None:
    """The signal that is stopping the sweep in ``sweep_dir``, None if it is not stopping."""
    try:
        return int((sweep_dir / STOPPING).read_text())
    except (OSError, ValueError):
        return None


def clear_stopping(sweep_dir: Path) -> None:
    (sweep_dir / STOPPING).unlink(missing_ok=True)


def stop_sweep_on_signals(sweep_dir: Path, trials_in_process: bool) -> None:
    """A sweep's handler, from its start to its last trial. Trials in this process: the running
    trial's own handlers take a signal first, so this one acts between trials, raising
    ``SweepInterrupted`` at once. Trials in worker processes: the first signal marks the sweep
    stopping (a running trial takes the mark as a signal of its own, within half a second, and
    a trial that starts now does not train); a second stops the sweep at once."""

    def stop_workers(signum: int, frame: FrameType | None) -> None:
        if stopping(sweep_dir) is not None:  # asked twice: stop now
            raise SweepInterrupted(signum, sweep_dir)
        mark_stopping(sweep_dir, signum)

    def stop_now(signum: int, frame: FrameType | None) -> None:
        raise SweepInterrupted(signum, sweep_dir)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop_now if trials_in_process else stop_workers)


@contextmanager
def holding_signals() -> Iterator[list[int]]:
    """Every trial has returned, and the leaderboard is written whatever signal comes: a signal
    meanwhile is held (its number appended to the list given), not raised. The holding handler
    stays for the few moments the process has left, so a second Ctrl-C cannot kill it before
    it has said its line."""
    held: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: held.append(signum))
    yield held
