"""The LightningModule: the Keras model, Keras' loss and optimizer, torchmetrics for every split."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cnnlab import CLASS_NAMES
from cnnlab.models.arch import Arch
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.perf.speed import LEAN_ACC, LEAN_MEAN, SpeedOptions


class MNISTClassifier(L.LightningModule):
    """Trains ``KerasCNN`` as ``compile(loss="categorical_crossentropy", optimizer="adam")`` does.

    Cross-entropy on logits equals softmax + categorical cross-entropy on one-hot labels.
    Adam uses Keras' defaults (lr 1e-3, epsilon 1e-7; PyTorch's default epsilon is 1e-8).
    Any other keyword is an ``Arch`` field (filters, kernel_size, ...). ``channels_last``,
    ``fused_adam``, ``compile`` and ``automatic_optimization`` change speed, not results (see
    docs/speed.md).
    """

    def __init__(
        self,
        lr: float = 1e-3,
        eps: float = 1e-7,
        weight_decay: float = 0.0,
        channels_last: bool = False,
        fused_adam: bool = False,
        compile: bool = False,
        automatic_optimization: bool = True,
        **arch: object,
    ) -> None:
        super().__init__()
        self.net = KerasCNN(Arch(**arch))
        self.speed = SpeedOptions(channels_last, fused_adam, compile)
        self.automatic_optimization = automatic_optimization  # Lightning's own switch
        self.save_hyperparameters({"lr": lr, "eps": eps, "weight_decay": weight_decay,
                                   **asdict(self.net.arch), **asdict(self.speed),
                                   "automatic_optimization": automatic_optimization},
                                  logger=False)  # fmt: skip
        self.speed.apply_to(self.net)
        self.class_names = CLASS_NAMES
        classes = self.net.arch.num_classes
        self.metrics = torch.nn.ModuleDict()  # registered, so they follow the module's device
        for split in ("val", "test"):
            self.metrics[f"{split}_loss"] = MeanMetric(**LEAN_MEAN)
            self.metrics[f"{split}_acc"] = MulticlassAccuracy(classes, average="micro", **LEAN_ACC)
        self.per_class_acc = MulticlassAccuracy(classes, average=None)
        # Training: loss and correct predictions summed on the device, a few tiny ops a step (two
        # torchmetrics updates a step cost ~0.25 ms, 1 % of it; keeping each step's outputs
        # instead fragmented the heap: 47 more page faults a step); the epoch's means go through
        # these metrics (synced across DDP ranks) once an epoch.
        self.metrics["train_loss"] = MeanMetric(**LEAN_MEAN)
        self.metrics["train_acc"] = MeanMetric(**LEAN_MEAN)
        self.train_sums: Tensor | None = None  # (loss x images, correct) since the epoch began
        self.train_images = 0

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
        does it: 0.1 ms a step less of Lightning's closures and hooks (0.5 % of the seed model's
        step on 2 CPU cores). ``model.automatic_optimization=true`` for Trainer gradient clipping
        or accumulation."""
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

    def __setattr__(self, name: str, value: object) -> None:
        """Speed only. Lightning notes which hook is running (``_current_fx_name``) around each
        of its ~45 hook calls a training step; torch's ``Module.__setattr__`` spends ~2 us on
        each, checking whether the string is a parameter, module or buffer. Stored directly:
        0.09 ms less a step (measured), 0.45 % of the seed model's step on 2 CPU cores."""
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:  # fmt: skip
        """Speed only. Lightning calls this before every automatic optimizer step; its default
        checks its arguments each time (~15 us) even when nothing is to be clipped."""
        if gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return torch.optim.Adam(
            self.parameters(), lr=hp.lr, eps=hp.eps, weight_decay=hp.weight_decay,
            **self.speed.adam_kwargs(),
        )  # fmt: skip
