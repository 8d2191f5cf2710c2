"""The LightningModule: what Keras' ``model.compile(loss=..., optimizer=..., metrics=["accuracy"])``
adds to a network, for any network.

The lesson's ``model`` is the network (``conf/model/``: ``KerasCNN`` by default); this module
is the rest of the lesson's ``compile`` and ``fit``: the loss, the optimizer, accuracy, and one
training step. Lightning's Trainer runs the loop around it (``trainer.*``: epochs, precision,
gradient clipping and accumulation, ``max_steps``); speed switches act on ``self.net`` from
outside (``conf/speed/``), so nothing here is about speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from cnnlab.models.metrics import LossAndAccuracy
from cnnlab.models.schedule import planned_steps

Batch = tuple[Tensor, Tensor]
OptimizerFactory = Callable[..., torch.optim.Optimizer]  # called with the parameters
# called with the optimizer and total_steps (the run's optimizer steps): OneCycleLR's partial
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class Classifier(L.LightningModule):
    """Trains ``net`` (images -> logits) as ``compile(loss="categorical_crossentropy",
    optimizer="adam", metrics=["accuracy"])`` and ``fit`` do: cross-entropy on logits equals
    softmax + categorical cross-entropy on one-hot labels.

    ``optimizer`` is a partial called with the parameters (``conf/optimizer/``), ``scheduler``
    an optional one called with the optimizer and the run's ``total_steps``
    (``conf/scheduler/``), ``loss`` the training loss (``conf/loss/``: label smoothing, say);
    validation and test always report plain cross-entropy, so runs with and without smoothing
    compare. ``class_names`` name the per-class test accuracies (``data.class_names``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        loss: nn.Module | None = None,
        class_names: Sequence[str] = tuple(str(n) for n in range(10)),
    ) -> None:
        super().__init__()
        self.net = net
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.loss = loss if loss is not None else nn.CrossEntropyLoss()
        self.class_names = list(class_names)
        self.train_metrics = LossAndAccuracy()  # each epoch's, logged at its end
        self.val_metrics = LossAndAccuracy()
        self.test_metrics = LossAndAccuracy()
        self.test_per_class = MulticlassAccuracy(len(self.class_names), average=None)

    def forward(self, images: Tensor) -> Tensor:
        """Logits."""
        return self.net(images)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss(logits, labels)
        self.train_metrics.update(loss, logits, labels)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self._evaluate(batch, "test")
        self.test_per_class.update(logits, batch[1])

    def _evaluate(self, batch: Batch, split: str) -> Tensor:
        """Plain cross-entropy and accuracy of one batch, into the epoch's; its logits."""
        images, labels = batch
        logits = self(images)
        getattr(self, f"{split}_metrics").update(F.cross_entropy(logits, labels), logits, labels)
        return logits

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """The test's loss and accuracy, and each class's, named as the data names them."""
        self._log_epoch("test")
        for name, accuracy in zip(self.class_names, self.test_per_class.compute(), strict=True):
            self.log(f"test_per_class/{name}", accuracy)
        self.test_per_class.reset()

    def _log_epoch(self, split: str) -> None:
        """The epoch's loss and accuracy, logged once: a ``self.log`` every step costs more
        than the metrics' own updates (docs/speed.md)."""
        metrics = getattr(self, f"{split}_metrics")
        for name, value in metrics.compute().items():
            self.log(f"{split}/{name}", value, prog_bar=True, batch_size=1)  # one value
        metrics.reset()

    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> Tensor:
        """Softmax probabilities, like Keras' ``model.predict``."""
        images = batch[0] if isinstance(batch, tuple | list) else batch
        return self(images).softmax(dim=-1)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        # +1: stepped after every optimizer step, the schedule ends at its last step's rate
        scheduler = self.make_scheduler(optimizer, total_steps=planned_steps(self.trainer) + 1)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
