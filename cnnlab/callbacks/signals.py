"""Ctrl-C and SIGTERM stop training at a batch boundary, save a checkpoint and say how to resume.

Python turns SIGINT into a KeyboardInterrupt wherever the program happens to be, possibly in
the middle of an optimizer step, and Lightning then exits with status 1 and no checkpoint.
``StopOnSignal`` instead only notes the signal; the next finished training batch saves
``checkpoints/interrupted.ckpt`` (the whole training state, which a resume continues from
exactly) and raises ``Interrupted``, which ``cnnlab.train`` records as status "interrupted"
with exit 128 + signal. A signal during validation waits for the first training batch after
it, so no checkpoint is ever taken halfway through a validation.
A second Ctrl-C while it is stopping interrupts at once. Outside training (the sanity check,
testing, figures), ``cnnlab.signals.signals_stop_the_run`` stops the run at once: nothing is
half-trained there, and ``last.ckpt`` holds the last finished epoch.

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
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from cnnlab.signals import Interrupted, in_submitit_job, noted_signals, stopping

INTERRUPTED_CKPT = "interrupted.ckpt"
LOOK_S = 0.5  # how often a sweep trial looks whether its sweep is stopping

log = logging.getLogger(__name__)


def sweep_of_trial() -> Path | None:
    """The sweep directory of the trial this process runs; None outside a sweep."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return None


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
