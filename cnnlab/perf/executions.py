"""N optimizer steps per Lightning training step (Keras' ``steps_per_execution``), opt-in:
``speed=executions`` or ``speed.steps_per_execution=<N|auto>``.

Lightning's loop costs a fixed fraction of a millisecond per training step (its fetcher, hooks
and callbacks). On a CPU the lesson's step takes tens of milliseconds, so that is a few per
cent at most (docs/speed.md has both, per CPU kind) and the default is Lightning's own,
textbook loop. Where a step takes about a millisecond (a GPU, a tiny network) it is not:
``ExecutionsClassifier`` then takes Lightning's batch iterator (the ``dataloader_iter``
flavour of ``training_step``) and runs N optimizer steps, each through Lightning's optimizer
as manual optimization does it, per training step. Its contract, tested: the same weights
and metrics as ``Classifier`` under Lightning's automatic optimization, with clipping,
accumulation, ``max_steps``, a scheduler and 16-mixed's scaler, and ``trainer.global_step``
counting optimizer steps as ever.

What Lightning applies only in automatic optimization (gradient clipping and accumulation) or
counts in training steps (``limit_train_batches``) is taken from the Trainer's arguments and
applied here and by the training loader (``trainer_arguments``).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any

import lightning as L
import torch
from torch import Tensor

from cnnlab.models.classifier import Batch, Classifier

log = logging.getLogger(__name__)
BatchIterator = Iterator[tuple[Batch, int, int]]  # Lightning's dataloader_iter: batch, index, 0
# speed.steps_per_execution=auto starts at the device's AUTO_STEPS; on one device each
# execution's pace then sets the next one's: doubled while they still fit in AUTO_SECONDS, so a
# signal, a max_steps or a progress-bar update waits no longer than that.
AUTO_STEPS = {"cpu": 16, "cuda": 64}
AUTO_SECONDS = 0.25
AUTO_MAX_STEPS = 1024
# The Trainer's arguments this layer applies itself, and what the Trainer gets instead.
OWN_ARGUMENTS = {"gradient_clip_val": None, "gradient_clip_algorithm": "norm",
                 "accumulate_grad_batches": 1}  # fmt: skip
# Lightning warns on every fit that this flavour is experimental and that hooks' batch_idx may
# not match the last batch consumed: chosen for that very reason, its behaviour pinned by tests.
FLAVOUR_WARNINGS = ("You are using the `dataloader_iter` step flavor", "Found `dataloader_iter`")


class ExecutionsClassifier(Classifier):
    """``Classifier`` whose training step runs up to ``steps_per_execution`` optimizer steps,
    each on its own ``accumulate_grad_batches`` batches (``auto``: from the device's start
    value, doubled while an execution fits in ``AUTO_SECONDS``)."""

    def __init__(
        self,
        *args: Any,
        steps_per_execution: int | str = "auto",
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        accumulate_grad_batches: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False  # Lightning's manual optimization
        self.requested = steps_per_execution
        self.clip = (
            (float(gradient_clip_val), gradient_clip_algorithm) if gradient_clip_val else None
        )
        self.accumulate_grad_batches = accumulate_grad_batches
        self.steps_per_execution = 1  # resolved for the device at fit start
        self.paced = False

    def on_fit_start(self) -> None:
        auto = self.requested == "auto"
        start = AUTO_STEPS.get(self.device.type, AUTO_STEPS["cpu"])
        self.steps_per_execution = start if auto else int(self.requested)
        self.paced = auto and self.trainer.world_size == 1  # DDP's ranks must run in step
        paced = f", doubled while an execution fits in {AUTO_SECONDS} s" if self.paced else ""
        log.info("speed.steps_per_execution=%s: %d optimizer steps per Lightning training step%s",
                 self.requested, self.steps_per_execution, paced)  # fmt: skip

    def training_step(self, dataloader_iter: BatchIterator) -> Tensor | None:  # type: ignore[override]
        """Up to ``steps_per_execution`` optimizer steps (fewer at the epoch's end or at
        ``trainer.max_steps``); the execution's training losses (None: no batch was left)."""
        started = time.perf_counter()
        steps = self.steps_per_execution
        if self.trainer.max_steps >= 0:
            steps = min(steps, self.trainer.max_steps - self.trainer.global_step)
        losses: list[Tensor] = []
        taken = 0
        while taken < steps and (step_losses := self._optimizer_step(dataloader_iter)):
            losses += step_losses
            taken += 1
        if self.paced and taken:
            self.steps_per_execution = paced_steps(
                self.device, (time.perf_counter() - started) / taken
            )
        return torch.stack(losses) if losses else None

    def _optimizer_step(self, dataloader_iter: BatchIterator) -> list[Tensor]:
        """One optimizer step on the next ``accumulate_grad_batches`` batches (fewer at the
        epoch's end, as Lightning steps on an epoch's last batch): their losses, detached."""
        optimizer = self.optimizers()
        optimizer.zero_grad()
        losses = []
        for batch, batch_idx, _ in islice(dataloader_iter, self.accumulate_grad_batches):
            loss = super().training_step(batch, batch_idx)  # forward, loss, metrics
            self.manual_backward(loss / self.accumulate_grad_batches)
            losses.append(loss.detach())
        if losses:
            optimizer.step()  # 16-mixed: unscaled, clipped (below), stepped through the scaler
            if (scheduler := self.lr_schedulers()) is not None:
                scheduler.step()  # Lightning steps schedulers in automatic optimization only
        return losses

    # Lightning's x-axis for logged metrics counts training steps that stepped an optimizer,
    # here executions; its documented ``step`` key puts the curves where Lightning's own loop
    # has them: epoch metrics at the step before the epoch's last (logged before its loop
    # counts that step), test metrics at the fit's last.
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self._log_step(self.trainer.global_step - 1)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_step(self.trainer.global_step - 1)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_step(self.trainer.global_step)

    def _log_step(self, step: int) -> None:
        self.log("step", float(max(step, 0)), batch_size=1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``trainer.gradient_clip_*``, which Lightning applies in automatic optimization only,
        here, where Lightning has unscaled 16-mixed gradients; with torch's own clipping."""
        if self.clip is None:
            return
        value, algorithm = self.clip
        if algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(self.parameters(), value)
        else:
            torch.nn.utils.clip_grad_value_(self.parameters(), value)


def paced_steps(device: torch.device, seconds_per_step: float) -> int:
    """``auto``'s steps for the next execution, at the last one's ``seconds_per_step``: the
    device's start value, doubled while that many steps fit in ``AUTO_SECONDS`` (at most
    ``AUTO_MAX_STEPS``). Doubling keeps the counts few and round; an execution's steps never
    change what is computed, only how often Lightning's loop runs."""
    steps = AUTO_STEPS.get(device.type, AUTO_STEPS["cpu"])
    while 2 * steps <= AUTO_MAX_STEPS and 2 * steps * seconds_per_step <= AUTO_SECONDS:
        steps *= 2
    return steps


def trainer_arguments(trainer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Trainer's arguments (``trainer.*``) split in two: those this layer applies itself
    (clipping, accumulation: for ``ExecutionsClassifier``) and what the Trainer gets instead."""
    own = {key: default if trainer.get(key) is None else trainer[key]
           for key, default in OWN_ARGUMENTS.items()}  # fmt: skip
    return own, {**OWN_ARGUMENTS, "limit_train_batches": None}


@contextmanager
def flavour_warnings_ignored(module: L.LightningModule) -> Iterator[None]:
    """Around ``trainer.fit``: Lightning's FLAVOUR_WARNINGS ignored while it fits an
    ``ExecutionsClassifier``, and only then (a scoped filter: a notebook's or a user's program's
    own warning filters stay as they were)."""
    with warnings.catch_warnings():
        if isinstance(module, ExecutionsClassifier):
            for message in FLAVOUR_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
        yield
