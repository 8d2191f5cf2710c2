"""Training throughput, measured the same way for the Lightning Trainer and the plain loop.

Steps are timed in windows of ``window`` consecutive training steps: the clock is read (after a
device sync, so GPU time is real) only at window edges, never per step, so measuring costs
nothing. Windows never span an epoch edge (validation, checkpoints). The first ``warmup`` steps
of the run are not timed. images/s = median over windows of images / window time.
With ``turns`` (``make bench``), the meter holds the turn for each window and passes it at
the window's end, so two processes alternate window by window (``bench.turns``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench.turns import Turns
from cnnlab.runs.results import write_json

# Steps of warm-up and per timed window: multiples of speed.steps_per_execution's CPU start
# value (16, where the lesson's model stays), because cnnlab's meter can only close a window
# where an execution ends; so its windows hold as many steps as the plain loop's, and window k
# of each covers the same batches.
WARMUP = WINDOW = 32


class ThroughputMeter:
    """Counts steps and images; closes a timed window every ``window`` steps."""

    def __init__(
        self,
        device: torch.device,
        warmup: int = WARMUP,
        window: int = WINDOW,
        turns: Turns | None = None,
    ) -> None:
        self.device, self.warmup, self.window, self.turns = device, warmup, window, turns
        self.steps_seen = self.images_seen = 0
        self.windows: list[tuple[int, float, int]] = []  # (images, seconds, steps)
        self._start: float | None = None
        self._images = self._steps = 0
        self.began = time.perf_counter()  # training's start (begin()), for its seconds
        self.train_s: float | None = None

    def begin(self) -> None:
        """Training starts now (its seconds, warm-up and validation included, go to train_s)."""
        self.began = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def restart(self) -> None:
        """Drop the open window (call at each epoch start)."""
        self._start, self._images, self._steps = None, 0, 0

    def step_done(self, images: int, steps: int = 1) -> None:
        """``steps`` optimizer steps on ``images`` images are done (a Lightning step runs
        ``speed.steps_per_execution`` of them): a window closes at the first call that makes
        it ``window`` steps or more."""
        self.steps_seen += steps
        self.images_seen += images
        if self.steps_seen < self.warmup:
            return
        if self._start is None:  # the window starts at the end of a step
            self._start = self._open_window()
            return
        self._images += images
        self._steps += steps
        if self._steps >= self.window:
            end = self._now()
            self.windows.append((self._images, end - self._start, self._steps))
            if self.turns:
                self.turns.give()
            self._start, self._images, self._steps = self._open_window(), 0, 0

    def _open_window(self) -> float:
        """The new window's start; with turns, after waiting for this process's turn."""
        if self.turns:
            self.turns.take()
        return self._now()

    def finish(self) -> None:
        """Training is over: let the other process run alone."""
        self.train_s = self._now() - self.began
        if self.turns:
            self.turns.leave()

    def summary(self) -> dict[str, Any]:
        """images/s (median window), ms per step, how much was timed, peak GPU memory."""
        rates = [images / seconds for images, seconds, _ in self.windows]
        per_step = [seconds / steps for _, seconds, steps in self.windows]
        return {
            "images_per_s": statistics.median(rates) if rates else None,
            "median_step_ms": statistics.median(per_step) * 1000 if per_step else None,
            "timed_windows": len(rates),
            "train_s": self.train_s,  # all of training: Lightning's fit, or the plain loop
            "images_trained": self.images_seen,
            "window_images_per_s": [round(rate) for rate in rates],  # the spread behind the median
            "window_step_ms": [round(seconds * 1000, 5) for seconds in per_step],
            "window_steps": self.window,
            "warmup_steps": self.warmup,
            "device": str(self.device),
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20
            if self.device.type == "cuda"
            else None,
        }


class ThroughputCallback(L.Callback):
    """``+callbacks.throughput._target_=bench.throughput.ThroughputCallback
    +callbacks.throughput.path=FILE``: the Trainer's throughput, written as JSON after fit.
    ``turns_dir`` and ``turns_role``: take turns with another process (``bench.turns``)."""

    def __init__(
        self,
        path: str,
        warmup: int = WARMUP,
        window: int = WINDOW,
        turns_dir: str | None = None,
        turns_role: str = "second",
    ) -> None:
        self.path, self.warmup, self.window = Path(path), warmup, window
        self.turns = (turns_dir, turns_role) if turns_dir else None
        self.meter: ThroughputMeter | None = None
        self.seen = (0, 0)  # (optimizer steps, images of the epoch) as the last step ended

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        turns = Turns(*self.turns) if self.turns else None
        self.meter = ThroughputMeter(pl_module.device, self.warmup, self.window, turns)
        self.meter.begin()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.meter.restart()
        self.seen = (trainer.global_step, 0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        """Counts the optimizer steps and images of the Lightning step that just ended (one
        batch, or an execution's: the training loader counts what it handed out)."""
        now = (trainer.global_step, trainer.train_dataloader.images_handed_out)
        self.meter.step_done(now[1] - self.seen[1], now[0] - self.seen[0])
        self.seen = now

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.meter.finish()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.meter.summary())
