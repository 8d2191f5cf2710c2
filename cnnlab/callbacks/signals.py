"""Ctrl-C and SIGTERM stop training at a batch boundary, save a checkpoint and say how to resume.

Python turns SIGINT into a KeyboardInterrupt wherever the program happens to be, possibly in
the middle of an optimizer step, and Lightning then exits with status 1 and no checkpoint.
``StopOnSignal`` instead only notes the signal; the next finished training batch saves
``checkpoints/interrupted.ckpt`` (the whole training state, which a resume continues from
exactly) and raises ``Interrupted``, which ``cnnlab.train`` records as status "interrupted"
with exit 128 + signal. A signal during validation waits for the first training batch after
it, so no checkpoint is ever taken halfway through a validation.
A second Ctrl-C while it is stopping interrupts at once. Outside training (the sanity check,
testing, figures), ``signals_stop_the_run`` stops the run at once: nothing is half-trained
there, and ``last.ckpt`` holds the last finished epoch.

In a job that submitit started (``launcher=slurm``), submitit owns SIGTERM and SIGUSR2. SLURM
sends SIGTERM before it kills a job it requeues (``scontrol requeue``) or cancels: training
saves ``interrupted.ckpt`` at the next batch and goes on, for SLURM to decide. SLURM sends
SIGUSR2 (submitit's ``--signal``) before the time limit and on preemption: training saves
``interrupted.ckpt`` at the next batch and stops, the run is recorded "interrupted", and the
signal is handed on to submitit, which requeues the job. The requeued trial continues from
that checkpoint (``cnnlab.runs.resume.resume_trial``).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cnnlab.callbacks.sweep_stop import stopping, sweep_of_trial
from cnnlab.errors import CnnlabError

INTERRUPTED_CKPT = "interrupted.ckpt"
LOOK_S = 0.5  # how often a sweep trial looks whether its sweep is stopping
REQUEUE_SIGNAL = signal.SIGUSR2  # submitit's signal on SLURM: time limit near, or preemption

log = logging.getLogger(__name__)


def in_submitit_job() -> bool:
    """Whether this process is a job submitit started (it sets SUBMITIT_EXECUTOR)."""
    return "SUBMITIT_EXECUTOR" in os.environ


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT, and SIGTERM except where submitit owns it."""
    return (signal.SIGINT,) if in_submitit_job() else (signal.SIGINT, signal.SIGTERM)


def noted_signals() -> tuple[signal.Signals, ...]:
    """The signals training notes and acts on at the next batch."""
    if in_submitit_job():
        return (signal.SIGINT, signal.SIGTERM, REQUEUE_SIGNAL)
    return stop_signals()


def hand_on_to_submitit() -> None:
    """After a SIGUSR2 stop was recorded: raise it again for submitit's own handler (back in
    place), which requeues the job with its original arguments and exits the process."""
    signal.raise_signal(REQUEUE_SIGNAL)


class Interrupted(CnnlabError):
    """A run stopped by a signal; the message says what was saved and how to go on (``resume``:
    the command that continues it; a sweep's trial names the sweep's, ``with_resume``)."""

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


@contextmanager
def signals_stop_the_run(run_dir: Path) -> Iterator[None]:
    """Outside training (start-up, the sanity check, testing, figures), SIGINT and SIGTERM stop
    the run at once (``Signalled``, recorded as ``Interrupted``); during training
    ``StopOnSignal`` takes them over and stops at the next batch. Lightning calls this handler
    after its own SIGTERM bookkeeping."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python takes signal handlers in the main thread only (threaded sweeps)
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Signalled(signum)

    previous = {s: signal.signal(s, stop) for s in stop_signals()}
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
    if isinstance(exc, SIGTERMException):
        return Interrupted(signal.SIGTERM, run_dir)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return Interrupted(signal.SIGINT, run_dir)
    return exc


class StopOnSignal(L.Callback):
    """Turns SIGINT/SIGTERM during training into a saved checkpoint and a clean stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self.sweep_dir: Path | None = None  # a sweep trial's: the sweep may be stopping
        self._looked = 0.0  # when it last looked

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in setup: Lightning installs its own SIGTERM handler just before training.
        self.signum, self.sweep_dir = None, sweep_of_trial()
        if threading.current_thread() is not threading.main_thread():
            return  # Python takes signal handlers in the main thread only (threaded sweeps)
        self._previous = {s: signal.signal(s, self._note) for s in noted_signals()}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signum is None and self.sweep_dir and time.monotonic() - self._looked > LOOK_S:
            self._looked = time.monotonic()
            self.signum = stopping(self.sweep_dir)  # the sweep's signal, as if it were ours
        self._stop_if_signalled(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        self._stop_if_signalled(trainer)  # a signal after the last batch still stops the run

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exc: BaseException
    ) -> None:
        self._restore_handlers()

    def _stop_if_signalled(self, trainer: L.Trainer) -> None:
        if self.signum is None or trainer.sanity_checking:
            return
        run_dir = Path(trainer.default_root_dir)
        checkpoint = run_dir / "checkpoints" / INTERRUPTED_CKPT
        trainer.save_checkpoint(checkpoint, weights_only=False)  # full state, not just weights
        if self.signum == signal.SIGTERM and in_submitit_job():
            log.warning("SIGTERM in a SLURM job: weights saved to %s; training goes on", checkpoint)
            self.signum = None
            return
        raise Interrupted(self.signum, run_dir, checkpoint)

    def _restore_handlers(self) -> None:
        # Before Lightning's own teardown restores what it replaced, so the order unwinds right.
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
