"""TensorBoard events on disk before each checkpoint: a killed run keeps the curves it saved."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger


class FlushLogs(L.Callback):
    """Puts TensorBoard events on disk before each checkpoint and when an epoch starts.

    The event writer buffers for up to two minutes; without this a killed run (SIGKILL, power
    loss) would lose curve points that its last checkpoint already covers. Lightning runs
    checkpoint callbacks last, so validation metrics are flushed before last.ckpt is written;
    the epoch's train metrics are logged after it and flushed when the next epoch starts.
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    @staticmethod
    def _flush(trainer: L.Trainer) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.flush()
