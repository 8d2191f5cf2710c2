"""The LightningModule: the Keras model, Keras' loss and optimizer, torchmetrics for every split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cnnlab import CLASS_NAMES
from cnnlab.models.arch import Arch
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.perf.speed import LEAN_ACC, LEAN_MEAN, Speed

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # called with the parameters
# conf/optimizer/adam.yaml as Python (tested equal): Keras' optimizer="adam"
KERAS_ADAM = partial(torch.optim.Adam, lr=0.001, eps=1e-07, weight_decay=0.0)


class MNISTClassifier(L.LightningModule):
    """Trains ``KerasCNN`` as ``compile(loss="categorical_crossentropy", optimizer="adam")`` does.

    Cross-entropy on logits equals softmax + categorical cross-entropy on one-hot labels.
    ``arch`` is the network (``model.*``), ``optimizer`` a partial called with the parameters
    (``optimizer.*``), ``speed`` how fast it runs, never what it computes (``speed.*``). The
    checkpoint keeps ``arch`` and ``optimizer`` as plain values (``weights_only`` loading).
    """

    def __init__(
        self,
        arch: Arch = Arch(),  # noqa: B008  (frozen dataclasses: shared safely)
        optimizer: OptimizerFactory = KERAS_ADAM,
        speed: Speed = Speed(),  # noqa: B008
    ) -> None:
        super().__init__()
        self.net = KerasCNN(arch)
        self.speed = speed
        self.make_optimizer = optimizer
        self.automatic_optimization = speed.automatic_optimization  # Lightning's own switch
        self.save_hyperparameters(
            {"arch": asdict(arch), "optimizer": optimizer_config(optimizer)}, logger=False
        )
        speed.apply_to(self.net)
        self.class_names = CLASS_NAMES
        classes = arch.num_classes
        self.metrics = torch.nn.ModuleDict()  # registered, so they follow the module's device
        for split in ("val", "test"):
            self.metrics[f"{split}_loss"] = MeanMetric(**LEAN_MEAN)
            self.metrics[f"{split}_acc"] = MulticlassAccuracy(classes, average="micro", **LEAN_ACC)
        self.per_class_acc = MulticlassAccuracy(classes, average=None)
        # Training: loss and correct predictions summed on the device in a few tiny ops a step
        # (a torchmetrics update a step costs far more; keeping each step's outputs instead
        # fragments the heap); the epoch's means go through these metrics (synced across DDP
        # ranks) once an epoch.
        self.metrics["train_loss"] = MeanMetric(**LEAN_MEAN)
        self.metrics["train_acc"] = MeanMetric(**LEAN_MEAN)
        self.train_sums: Tensor | None = None  # (loss x images, correct) since the epoch began
        self.train_images = 0
        self.resumed_sums: dict[str, Any] | None = None  # from a checkpoint, for its epoch

    def forward(self, images: Tensor) -> Tensor:
        """Logits."""
        return self.net(self.speed.layout(images))

    def _logits_and_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self(images)
        return logits, F.cross_entropy(logits, labels)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        logits, loss = self._logits_and_loss(batch)
        labels = batch[1]
        correct = (logits.argmax(dim=-1) == labels).sum(dtype=loss.dtype)
        sums = torch.stack((loss.detach() * len(labels), correct))
        self.train_sums = sums if self.train_sums is None else self.train_sums + sums
        self.train_images += len(labels)
        if not self.automatic_optimization:
            self._update_weights(loss)
        return loss

    def _update_weights(self, loss: Tensor) -> None:
        """What Lightning's automatic optimization does with the loss, done as a PyTorch loop
        does it, without its closure and hooks (``speed.automatic_optimization=false``)."""
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def _eval_step(self, batch: tuple[Tensor, Tensor], split: str) -> None:
        """Validation/test metrics, logged by Lightning at the epoch's end."""
        logits, loss = self._logits_and_loss(batch)
        logits, labels = logits.detach(), batch[1]
        for name, update in (("loss", (loss.detach(), len(labels))), ("acc", (logits, labels))):
            metric = self.metrics[f"{split}_{name}"]
            metric.update(*update)
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=True)
        if split == "test":
            self.per_class_acc.update(logits, labels)

    def on_train_epoch_end(self) -> None:
        """Train metrics, logged once an epoch: a ``self.log`` every step costs a few % of it."""
        if self.train_sums is None:
            return
        for name, total in zip(("loss", "acc"), self.train_sums, strict=True):
            metric = self.metrics[f"train_{name}"]
            metric.update(total / self.train_images, self.train_images)
            self.log(f"train/{name}", metric.compute(), prog_bar=True)
            metric.reset()
        self.train_sums, self.train_images = None, 0

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint taken mid-epoch keeps the epoch's running train sums, so a run continued
        from it logs the same epoch means as one that never stopped."""
        if self.train_sums is not None:
            sums = (self.train_sums.cpu(), self.train_images)
            checkpoint["train_sums"] = {"epoch": self.current_epoch, "sums": sums}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_sums = checkpoint.get("train_sums")

    def on_train_epoch_start(self) -> None:
        # the sums of a checkpoint belong to its epoch: kept when that epoch goes on, dropped
        # when the checkpoint was taken at its end (the next epoch starts from zero)
        resumed, self.resumed_sums = self.resumed_sums, None
        if resumed is not None and resumed["epoch"] == self.current_epoch:
            sums, self.train_images = resumed["sums"]
            self.train_sums = sums.to(self.device)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        """Per-class test accuracy, one scalar per class name (as the lesson names them)."""
        for name, acc in zip(self.class_names, self.per_class_acc.compute(), strict=True):
            self.log(f"test_per_class/{name}", acc)
        self.per_class_acc.reset()

    def predict_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> Tensor:
        """Softmax probabilities, like Keras' ``model.predict``."""
        images = batch[0] if isinstance(batch, tuple | list) else batch
        return self(images).softmax(dim=-1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        kwargs = self.speed.optimizer_kwargs(self.make_optimizer)
        return self.make_optimizer(self.parameters(), **kwargs)


def optimizer_config(optimizer: OptimizerFactory) -> dict[str, Any]:
    """A partial optimizer as the config node that makes it (``_target_``, ``_partial_``, its
    keywords), in plain values a ``weights_only`` checkpoint can hold."""
    func = getattr(optimizer, "func", optimizer)
    keywords = getattr(optimizer, "keywords", {})
    plain = {k: list(v) if isinstance(v, tuple | list) else v for k, v in keywords.items()}
    return {"_target_": f"{func.__module__}.{func.__qualname__}", "_partial_": True, **plain}
