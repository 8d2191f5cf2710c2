"""Stop a run whose training loss becomes NaN or infinite, instead of "finishing" with junk.

The check costs no host sync and no tensor op per step: each training step's losses (one per
batch it trained, already detached by Lightning) are kept in a list, and tested together, in one
``isfinite``, once ``check_every_n_steps`` optimizer steps have passed since the last test, and
before each validation (so a diverged epoch never reaches ModelCheckpoint and never overwrites
last.ckpt). Small tensor ops are dear inside a training step (docs/speed.md): three a step here
cost more than the rest of this callback.
Lightning's alternatives are slower (``detect_anomaly``) or epoch-level on a logged metric only
(``EarlyStopping(check_finite=True)``).

A network can be finite in training and NaN in eval mode (dropout and batch norm switched), so
the validation and test losses are checked too, at the end of each pass: before ModelCheckpoint
(Lightning runs checkpoint callbacks last) can keep such a model as the best.
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

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            check_eval_loss(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        check_eval_loss(trainer, pl_module, "test")

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        losses = torch.cat([loss.reshape(-1) for loss in self._losses]) if self._losses else None
        if losses is not None and not bool(torch.isfinite(losses).all()):
            if self._since_step == 0 and trainer.ckpt_path is None and not losses[0].isfinite():
                raise TrainingDiverged(  # no update has happened yet: the lr is not to blame
                    f"the first training step's loss is NaN or infinite, before any update: "
                    f"{network_name(pl_module)}'s output is not finite on the data"
                )
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
            step, epoch = trainer.global_step, trainer.current_epoch
            raise TrainingDiverged(
                f"training diverged: the training loss became NaN or infinite between steps "
                f"{self._since_step} and {step} (epoch {epoch}); "
                f"optimizer.lr={lr} is likely too high. Checkpoints saved before are kept."
            )
        self._losses, self._since_step = [], trainer.global_step


def network_name(pl_module: L.LightningModule) -> str:
    """The network's class as its ``model._target_`` names it."""
    net = getattr(pl_module, "net", pl_module)
    return f"model._target_={type(net).__module__}.{type(net).__qualname__}"


def check_eval_loss(trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
    """TrainingDiverged if the pass's loss (``val/loss``, ``test/loss``) is NaN or infinite."""
    loss = trainer.callback_metrics.get(f"{split}/loss")
    if loss is not None and not bool(torch.isfinite(loss)):
        raise TrainingDiverged(
            f"the {split} loss is {float(loss)}: {network_name(pl_module)}'s output in eval "
            f"mode (dropout and batch norm as in inference) is not finite"
        )
