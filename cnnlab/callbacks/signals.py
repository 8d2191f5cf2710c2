"""Ctrl-C and SIGTERM stop training at a batch boundary, save a checkpoint and say how to resume.

Python turns SIGINT into a KeyboardInterrupt wherever the program happens to be, possibly in
the middle of an optimizer step, and Lightning then exits with status 1 and no checkpoint.
``StopOnSignal`` instead only notes the signal; the next finished batch saves
``checkpoints/interrupted.ckpt`` (consistent weights and optimizer state) and raises
``Interrupted``, which ``cnnlab.train`` records as status "interrupted" with exit 128 + signal.
A second Ctrl-C while it is stopping interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from cnnlab.errors import CnnlabError

SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED_CKPT = "interrupted.ckpt"


class Interrupted(CnnlabError):
    """Training stopped by a signal after saving its state; the message says how to resume."""

    status = "interrupted"

    def __init__(self, signum: int, checkpoint: Path, run_dir: Path) -> None:
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        super().__init__(
            f"training stopped by {signal.Signals(signum).name}; weights at that moment saved to "
            f"{checkpoint}. Resume with: python -m cnnlab.train resume={run_dir}"
        )


class StopOnSignal(L.Callback):
    """Turns SIGINT/SIGTERM during training into a saved checkpoint and a clean stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in setup: Lightning installs its own SIGTERM handler just before training.
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            return  # Python takes signal handlers in the main thread only (threaded sweeps)
        self._previous = {s: signal.signal(s, self._note) for s in SIGNALS}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._stop_if_signalled(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
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
        raise Interrupted(self.signum, checkpoint, run_dir)

    def _restore_handlers(self) -> None:
        # Before Lightning's own teardown restores what it replaced, so the order unwinds right.
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
