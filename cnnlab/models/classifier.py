"""The LightningModule: the Keras model, Keras' loss and optimizer, torchmetrics for every split."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from itertools import islice
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cnnlab import CLASS_NAMES
from cnnlab.data.datamodule import batches_within
from cnnlab.errors import CnnlabError
from cnnlab.models.arch import Arch
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.perf.speed import LEAN_ACC, LEAN_MEAN, Speed

log = logging.getLogger(__name__)
Batch = tuple[Tensor, Tensor]
BatchIterator = Iterator[tuple[Batch, int, int]]  # Lightning's dataloader_iter: batch, index, 0
CLIP_ALGORITHMS = ("norm", "value")
# Lightning warns on every fit that the dataloader_iter flavour is experimental and that hooks'
# batch_idx may not match the last batch consumed: cnnlab chose the flavour for that reason
# (steps_per_execution), its callbacks count optimizer steps, and tests pin what it does.
for _message in ("You are using the `dataloader_iter` step flavor", "Found `dataloader_iter`"):
    warnings.filterwarnings("ignore", message=_message)

OptimizerFactory = Callable[..., torch.optim.Optimizer]  # called with the parameters
# called with the optimizer and total_steps (the run's optimizer steps), e.g. OneCycleLR's partial
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
# conf/optimizer/adam.yaml as Python (tested equal): Keras' optimizer="adam"
KERAS_ADAM = partial(torch.optim.Adam, lr=0.001, eps=1e-07, weight_decay=0.0)


class MNISTClassifier(L.LightningModule):
    """Trains ``KerasCNN`` as ``compile(loss="categorical_crossentropy", optimizer="adam")`` does.

    Cross-entropy on logits equals softmax + categorical cross-entropy on one-hot labels.
    ``arch`` is the network (``model.*``), ``optimizer`` a partial called with the parameters
    (``optimizer.*``), ``speed`` how fast it runs, never what it computes (``speed.*``). The
    checkpoint keeps ``arch`` and ``optimizer`` as plain values (``weights_only`` loading).
    ``scheduler`` (``scheduler.*``, optional) sets the learning rate at every optimizer step;
    ``loss`` (``loss.*``) is the training loss, label smoothing included: validation and test
    always report plain cross-entropy, so runs with and without smoothing compare.
    ``gradient_clip_*`` and ``accumulate_grad_batches`` are the Trainer's arguments of those
    names, applied by this module's own optimizer step (``build`` hands them over from
    ``trainer.*``; Lightning applies them only in its automatic optimization).
    """

    def __init__(
        self,
        arch: Arch = Arch(),  # noqa: B008  (frozen dataclasses: shared safely)
        optimizer: OptimizerFactory = KERAS_ADAM,
        speed: Speed = Speed(),  # noqa: B008
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        accumulate_grad_batches: int = 1,
        scheduler: SchedulerFactory | None = None,
        loss: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.net = KerasCNN(arch)
        self.speed = speed
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None  # made at fit start
        self.train_loss = check_loss(loss or torch.nn.CrossEntropyLoss())
        self.automatic_optimization = speed.automatic_optimization  # Lightning's own switch
        self.clip = check_clipping(gradient_clip_val, gradient_clip_algorithm)
        self.accumulate = check_accumulation(accumulate_grad_batches)
        self.steps_per_execution = 1  # resolved from speed.steps_per_execution at fit start
        self.lightning_backward = True  # False where Lightning's backward only calls hooks
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

    def _logits_and_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Logits and plain cross-entropy: what validation and test report."""
        images, labels = batch
        logits = self(images)
        return logits, F.cross_entropy(logits, labels)

    def on_fit_start(self) -> None:
        """Resolve ``speed.steps_per_execution`` and how to backpropagate, for this Trainer."""
        trainer = self.trainer
        if self.automatic_optimization and not isinstance(self, LightningStepClassifier):
            raise CnnlabError(
                "speed.automatic_optimization=true: Lightning's optimization needs the module "
                "make_classifier builds (LightningStepClassifier)"
            )
        self.steps_per_execution = self.speed.resolve_steps_per_execution(self.device)
        log.info(
            "speed.steps_per_execution=%s: %d optimizer steps per Lightning training step",
            self.speed.steps_per_execution, self.steps_per_execution,
        )  # fmt: skip
        # Lightning's backward scales the loss under 16-mixed and readies DDP's gradient
        # reducer; on one device without a scaler it only calls hooks (2 rounds over every
        # callback a step, docs/speed.md), which a PyTorch loop does not have either.
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.lightning_backward = trainer.world_size > 1 or scaler is not None

    def training_step(self, dataloader_iter: BatchIterator) -> Tensor | None:
        """One Lightning step = up to ``steps_per_execution`` optimizer steps, each on its own
        batch(es), so Lightning's per-step hooks, callbacks, progress bar and loop bookkeeping
        run once per execution (Keras' ``steps_per_execution``). Lightning hands over its
        batch iterator (``dataloader_iter``); ``trainer.global_step`` still counts optimizer
        steps (each goes through Lightning's optimizer), so ``trainer.max_steps`` stops at the
        exact step, mid-execution. Returns the epoch's running (loss x images, correct), which
        a non-finite loss makes non-finite (None if the epoch had no batch left)."""
        steps, max_steps = self.steps_per_execution, self.trainer.max_steps
        if max_steps >= 0:
            steps = min(steps, max_steps - self.trainer.global_step)
        optimizer = self.optimizers()
        sums: list[tuple[Tensor, int]] = []
        for _ in range(steps):
            step_sums = self._optimizer_step(optimizer, dataloader_iter)
            if not step_sums:
                break  # the epoch's batches are used up
            sums += step_sums
        return self._add_to_epoch_sums(sums)

    def _optimizer_step(
        self, optimizer: LightningOptimizer, dataloader_iter: BatchIterator
    ) -> list[tuple[Tensor, int]]:
        """One optimizer step on the next ``accumulate_grad_batches`` batches (fewer at the
        epoch's end, as Lightning steps on an epoch's last batch), done as a PyTorch loop does
        it (``speed.automatic_optimization=false``); each batch's sums and images."""
        optimizer.zero_grad()
        sums = []
        for batch, _, _ in islice(dataloader_iter, self.accumulate):
            loss, batch_sums, images = self._loss_and_sums(batch)
            self._backward(loss / self.accumulate if self.accumulate > 1 else loss)
            sums.append((batch_sums, images))
        if sums:
            optimizer.step()  # gradients clipped in on_before_optimizer_step
            if self.scheduler is not None:  # Lightning steps it only in automatic optimization
                self.scheduler.step()
        return sums

    def _backward(self, loss: Tensor) -> None:
        if self.lightning_backward:
            self.manual_backward(loss)
        else:
            loss.backward()

    def _loss_and_sums(self, batch: Batch) -> tuple[Tensor, Tensor, int]:
        """A training batch's loss, its (loss x images, correct predictions) detached, and its
        number of images."""
        images, labels = (t.to(self.device, non_blocking=True) for t in batch)
        logits = self(images)
        loss = self.train_loss(logits, labels)
        correct = (logits.argmax(dim=-1) == labels).sum(dtype=loss.dtype)
        return loss, torch.stack((loss.detach() * len(labels), correct)), len(labels)

    def _add_to_epoch_sums(self, batches: list[tuple[Tensor, int]]) -> Tensor | None:
        """Adds batches' sums to the epoch's on the device, one at a time in batch order (so
        the sums are bit-identical for every ``steps_per_execution``), without a host sync;
        returns the epoch's running sums (None if no batch)."""
        if not batches:
            return None
        total = self.train_sums
        for batch_sums, _ in batches:
            total = batch_sums if total is None else total + batch_sums
        self.train_sums = total
        self.train_images += sum(images for _, images in batches)
        return total

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``trainer.gradient_clip_val`` under cnnlab's own optimizer step, with torch's own
        clipping (what Lightning's calls): here, Lightning has already unscaled 16-mixed
        gradients (a fused optimizer unscales inside its step: refused, runs/checks.py)."""
        if self.clip is None:
            return
        value, algorithm = self.clip
        if algorithm == "norm":
            torch.nn.utils.clip_grad_norm_(self.parameters(), value)
        else:
            torch.nn.utils.clip_grad_value_(self.parameters(), value)

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
        self._log_step()
        optimizer = self.optimizers(use_pl_optimizer=False)
        self.log(f"lr-{type(optimizer).__name__}", optimizer.param_groups[0]["lr"], batch_size=1)
        for name, total in zip(("loss", "acc"), self.train_sums, strict=True):
            metric = self.metrics[f"train_{name}"]
            metric.update(total / self.train_images, self.train_images)
            self.log(f"train/{name}", metric.compute(), prog_bar=True, batch_size=1)
            metric.reset()
        self.train_sums, self.train_images = None, 0

    def _log_step(self) -> None:
        """Epoch-level logs at the optimizer step (Lightning's documented ``step`` key): its
        own default, the count of Lightning steps, counts executions of
        ``steps_per_execution`` steps, so curves of runs with a different N would not line
        up. ``epoch`` is Lightning's other default x-axis key, kept."""
        self.log("step", float(self.global_step), batch_size=1)
        self.log("epoch", float(self.current_epoch), batch_size=1)

    def on_validation_epoch_end(self) -> None:
        self._log_step()

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
        self._log_step()
        for name, acc in zip(self.class_names, self.per_class_acc.compute(), strict=True):
            self.log(f"test_per_class/{name}", acc)
        self.per_class_acc.reset()

    def predict_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> Tensor:
        """Softmax probabilities, like Keras' ``model.predict``."""
        images = batch[0] if isinstance(batch, tuple | list) else batch
        return self(images).softmax(dim=-1)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        kwargs = self.speed.optimizer_kwargs(self.make_optimizer)
        optimizer = self.make_optimizer(self.parameters(), **kwargs)
        if self.make_scheduler is None:
            return optimizer
        # +1: the scheduler steps after every optimizer step, so after the last one it stands
        # at the schedule's end (the lr the epoch's log shows), not one step past it
        self.scheduler = self.make_scheduler(optimizer, total_steps=self._optimizer_steps() + 1)
        # Lightning saves and restores its state in checkpoints; "step": stepped per optimizer
        # step (by Lightning in automatic optimization, by _optimizer_step otherwise)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler,
                                                         "interval": "step"}}  # fmt: skip

    def _optimizer_steps(self) -> int:
        """The optimizer steps this fit will take, for a schedule over the whole run: the
        epochs' batches (a fresh training loader of the datamodule: Lightning's
        ``estimated_stepping_batches`` sets up the fit loop's data this early, and a resume
        then loses its place in the epoch), an optimizer step per ``accumulate`` of them and
        one at each epoch's end, at most ``max_steps``."""
        trainer = self.trainer
        batches = len(trainer.datamodule.train_dataloader())
        accumulate = self.accumulate
        if self.automatic_optimization:  # Lightning applies the limit and accumulation itself
            batches = batches_within(trainer.limit_train_batches, batches) or batches
            accumulate = trainer.accumulate_grad_batches
        steps = math.ceil(batches / accumulate) * max(trainer.max_epochs or 0, 0)
        if trainer.max_steps >= 0:
            steps = min(steps, trainer.max_steps) if steps else trainer.max_steps
        if steps < 1:
            raise CnnlabError("scheduler: needs a finite trainer.max_epochs or trainer.max_steps")
        return steps


class LightningStepClassifier(MNISTClassifier):
    """``speed.automatic_optimization=true``: Lightning's automatic optimization, one batch per
    ``training_step``, in Lightning's usual batch flavour. Lightning's gradient accumulation
    needs that flavour: given ``dataloader_iter`` it cannot tell an epoch's last batch in
    advance, and carries that batch's gradient into the next epoch's first step."""

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:  # type: ignore[override]
        loss, sums, images = self._loss_and_sums(batch)
        self._add_to_epoch_sums([(sums, images)])
        return loss


def make_classifier(
    arch: Arch, optimizer: OptimizerFactory, speed: Speed, **stepping: Any
) -> MNISTClassifier:
    """The module for ``speed``: cnnlab's own optimizer step, or Lightning's (automatic)."""
    module = LightningStepClassifier if speed.automatic_optimization else MNISTClassifier
    return module(arch, optimizer, speed, **stepping)


def check_clipping(value: float | None, algorithm: str) -> tuple[float, str] | None:
    """``trainer.gradient_clip_val`` and ``_algorithm`` as Lightning's Trainer checks them."""
    if algorithm not in CLIP_ALGORITHMS:
        raise CnnlabError(
            f"trainer.gradient_clip_algorithm={algorithm!r}: must be one of norm, value"
        )
    if value is not None and not value >= 0:
        raise CnnlabError(f"trainer.gradient_clip_val={value!r}: must be >= 0")
    return (float(value), algorithm) if value else None


def check_loss(loss: torch.nn.Module) -> torch.nn.Module:
    smoothing = getattr(loss, "label_smoothing", 0.0)
    if not 0.0 <= smoothing < 1.0:
        raise CnnlabError(f"loss.label_smoothing={smoothing!r}: must be in [0, 1)")
    return loss


def check_accumulation(batches: int) -> int:
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise CnnlabError(f"trainer.accumulate_grad_batches={batches!r}: must be an integer >= 1")
    return batches


def optimizer_config(optimizer: OptimizerFactory) -> dict[str, Any]:
    """A partial optimizer as the config node that makes it (``_target_``, ``_partial_``, its
    keywords), in plain values a ``weights_only`` checkpoint can hold."""
    func = getattr(optimizer, "func", optimizer)
    keywords = getattr(optimizer, "keywords", {})
    plain = {k: list(v) if isinstance(v, tuple | list) else v for k, v in keywords.items()}
    return {"_target_": f"{func.__module__}.{func.__qualname__}", "_partial_": True, **plain}
