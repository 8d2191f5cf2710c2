"""Stop a run whose training loss becomes NaN or infinite, instead of "finishing" with junk.

The check costs no host sync and no tensor op per step: each training step's losses (one per
batch it trained, already detached by Lightning) are kept in a list, and tested together, in one
``isfinite``, once ``check_every_n_steps`` optimizer steps have passed since the last test, and
before each validation (so a diverged epoch never reaches ModelCheckpoint and never overwrites
last.ckpt). Small tensor ops are dear inside a training step (docs/speed.md): three a step here
cost more than the rest of this callback.
Lightning's alternatives are slower (``detect_anomaly``) or epoch-level on a logged metric only
(``EarlyStopping(check_finite=True)``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from cnnlab.errors import CnnlabError


class TrainingDiverged(CnnlabError):
    """The training loss is NaN or infinite: the run cannot produce a usable model."""

    exit_code = 1


class StopOnNonFiniteLoss(L.Callback):
    """Raises TrainingDiverged soon after the first non-finite training loss."""

    def __init__(self, check_every_n_steps: int = 50) -> None:
        if check_every_n_steps < 1:
            raise CnnlabError(f"check_every_n_steps={check_every_n_steps}: must be >= 1")
        self.check_every_n_steps = check_every_n_steps
        self._losses: list[torch.Tensor] = []  # since the last test
        self._since_step = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any
    ) -> None:
        losses = outputs["loss"] if isinstance(outputs, dict) else outputs
        if losses is None:  # a training step with no batch left
            return
        self._losses.append(losses)
        if trainer.global_step - self._since_step >= self.check_every_n_steps:
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        losses = torch.cat([loss.reshape(-1) for loss in self._losses]) if self._losses else None
        if losses is not None and not bool(torch.isfinite(losses).all()):
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
            step, epoch = trainer.global_step, trainer.current_epoch
            raise TrainingDiverged(
                f"training diverged: the training loss became NaN or infinite between steps "
                f"{self._since_step} and {step} (epoch {epoch}); "
                f"optimizer.lr={lr} is likely too high. Checkpoints saved before are kept."
            )
        self._losses, self._since_step = [], trainer.global_step
