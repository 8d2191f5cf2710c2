"""The LightningModule: the Keras model, Keras' loss and optimizer, torchmetrics for every split."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

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
from cnnlab.perf.speed import AUTO_SECONDS, LEAN_ACC, LEAN_MEAN, Speed

log = logging.getLogger(__name__)
Batch = tuple[Tensor, Tensor]
BatchIterator = Iterator[tuple[Batch, int, int]]  # Lightning's dataloader_iter: batch, index, 0
CLIP_ALGORITHMS = ("norm", "value")
STEPS_KEY = "optimizer_steps"  # cnnlab's count of optimizer steps, in every checkpoint
# Lightning warns on every fit that the dataloader_iter flavour is experimental and that hooks'
# batch_idx may not match the last batch consumed: cnnlab chose the flavour for that reason
# (steps_per_execution), its callbacks count optimizer steps, and tests pin what it does.
for _message in ("You are using the `dataloader_iter` step flavor", "Found `dataloader_iter`"):
    warnings.filterwarnings("ignore", message=_message)


class Outputs(NamedTuple):
    """A training batch's outputs, detached, kept until its execution's end."""

    loss: Tensor  # the batch's mean training loss
    logits: Tensor
    labels: Tensor


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
    ``gradient_clip_*``, ``accumulate_grad_batches`` and ``max_steps`` are the Trainer's
    arguments of those names, applied by this module's own optimizer step (``build`` hands them
    over from ``trainer.*``; Lightning applies the first three only in its automatic
    optimization, and counts ``max_steps`` in training steps, which here are executions).
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
        max_steps: int = -1,
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
        self.max_steps = check_max_steps(max_steps)
        self.steps_done = 0  # optimizer steps of this fit (checkpointed: resume goes on counting)
        self.resumed_steps: int | None = None  # from a checkpoint, for the fit that resumes it
        self.steps_per_execution = 1  # resolved from speed.steps_per_execution at fit start
        self.paced = False  # auto: each execution's pace sets the next one's steps
        self.lightning_backward = True  # False where Lightning's backward only calls hooks
        self.scaler: torch.amp.GradScaler | None = None  # 16-mixed's, from Lightning's plugin
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
        # Training: loss and correct predictions summed on the device in a few tiny ops an
        # execution (a torchmetrics update a step costs far more; keeping a whole epoch's
        # outputs instead fragments the heap); the epoch's means go through these metrics
        # (synced across DDP ranks) once an epoch.
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
        # paced on one device only: DDP's ranks must run their executions in step
        self.paced = self.speed.paces and trainer.world_size == 1
        paced = f", doubled while an execution fits in {AUTO_SECONDS} s" if self.paced else ""
        log.info(
            "speed.steps_per_execution=%s: %d optimizer steps per Lightning training step%s",
            self.speed.steps_per_execution, self.steps_per_execution, paced,
        )  # fmt: skip
        # Lightning's backward scales the loss under 16-mixed and readies DDP's gradient
        # reducer; on one device without a scaler it only calls hooks (2 rounds over every
        # callback a step, docs/speed.md), which a PyTorch loop does not have either.
        self.scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.lightning_backward = trainer.world_size > 1 or self.scaler is not None

    def on_train_start(self) -> None:
        """A resumed fit goes on counting from its checkpoint's optimizer steps."""
        if self.resumed_steps is not None:
            self.steps_done, self.resumed_steps = self.resumed_steps, None

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps taken in this fit: what logs, checkpoints and ``max_steps`` count.
        (Lightning's ``trainer.global_step`` counts training steps, i.e. executions.)"""
        return self.steps_done

    def training_step(self, dataloader_iter: BatchIterator) -> Tensor | None:
        """One Lightning step = up to ``steps_per_execution`` optimizer steps, each on its own
        batch(es), so Lightning's per-step hooks, callbacks, progress bar and loop bookkeeping
        run once per execution (Keras' ``steps_per_execution``). Lightning hands over its
        batch iterator (``dataloader_iter``). The execution's first step goes through
        Lightning's optimizer (its ``on_before_optimizer_step`` round over every callback,
        and one ``trainer.global_step``), the others through the torch optimizer, as a
        PyTorch loop steps (``_step``). ``max_steps`` stops at the exact optimizer step,
        mid-execution. Under ``auto`` the execution's pace sets the next one's steps
        (``Speed.paced_steps``). Returns the epoch's running (loss x images, correct), which
        a non-finite loss makes non-finite (None if the epoch had no batch left)."""
        started = time.perf_counter()
        steps = self.steps_per_execution
        if self.max_steps >= 0:
            steps = min(steps, self.max_steps - self.steps_done)
        lightning, torch_optimizer = self.optimizers(), self.optimizers(use_pl_optimizer=False)
        outputs: list[Outputs] = []
        taken = 0
        while taken < steps:
            step_outputs = self._optimizer_step(torch_optimizer if taken else lightning,
                                                dataloader_iter)  # fmt: skip
            if not step_outputs:
                break  # the epoch's batches are used up
            outputs += step_outputs
            taken += 1
        self.steps_done += taken
        if self.paced and taken:
            pace = (time.perf_counter() - started) / taken
            self.steps_per_execution = self.speed.paced_steps(self.device, pace)
        if 0 <= self.max_steps <= self.steps_done:
            self.trainer.should_stop = True  # validates and checkpoints, as max_steps does
        return self._add_to_epoch_sums(outputs)

    def _optimizer_step(
        self, optimizer: LightningOptimizer | torch.optim.Optimizer, dataloader_iter: BatchIterator
    ) -> list[Outputs]:
        """One optimizer step on the next ``accumulate_grad_batches`` batches (fewer at the
        epoch's end, as Lightning steps on an epoch's last batch), done as a PyTorch loop does
        it (``speed.automatic_optimization=false``); each batch's outputs."""
        optimizer.zero_grad()
        outputs = []
        for batch, _, _ in islice(dataloader_iter, self.accumulate):
            loss, batch_outputs = self._loss_and_outputs(batch)
            self._backward(loss / self.accumulate if self.accumulate > 1 else loss)
            outputs.append(batch_outputs)
        if outputs:
            self._step(optimizer)
            if self.scheduler is not None:  # Lightning steps it only in automatic optimization
                self.scheduler.step()
        return outputs

    def _step(self, optimizer: LightningOptimizer | torch.optim.Optimizer) -> None:
        """Lightning's optimizer clips (``on_before_optimizer_step``) and, under 16-mixed, its
        precision plugin unscales and steps through the gradient scaler; for the torch
        optimizer the same is done here, with torch's own calls, in Lightning's order."""
        if isinstance(optimizer, LightningOptimizer):
            optimizer.step()
            return
        if self.scaler is not None and self.clip is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients
        self._clip_gradients()
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def _backward(self, loss: Tensor) -> None:
        if self.lightning_backward:
            self.manual_backward(loss)
        else:
            loss.backward()

    def _loss_and_outputs(self, batch: Batch) -> tuple[Tensor, Outputs]:
        """A training batch's loss, and its outputs for the epoch's sums."""
        images, labels = (t.to(self.device, non_blocking=True) for t in batch)
        logits = self(images)
        loss = self.train_loss(logits, labels)
        return loss, Outputs(loss.detach(), logits.detach(), labels)

    def _add_to_epoch_sums(self, outputs: list[Outputs]) -> Tensor | None:
        """Adds an execution's (loss x images, correct predictions) to the epoch's, on the
        device and without a host sync, in the same few ops however many steps it ran (each op
        a step costs Python time on a CPU, a kernel launch on a GPU); returns the epoch's
        running sums (None if no batch). The sums are float64, so how batches are grouped into
        executions does not change them: float32 losses add up exactly in float64's 53 bits
        (batch losses down to ~0.001 over a 60,000-image epoch; below, a grouping can move the
        sum by ~1e-16 of itself, far under the float32 mean's rounding), and correct
        predictions are whole numbers."""
        if not outputs:
            return None
        losses = torch.cat([out.loss.expand(len(out.labels)) for out in outputs])
        logits = torch.cat([out.logits for out in outputs])
        labels = torch.cat([out.labels for out in outputs])
        correct = (logits.argmax(dim=-1) == labels).sum(dtype=torch.float64)
        sums = torch.stack((losses.sum(dtype=torch.float64), correct))
        self.train_sums = sums if self.train_sums is None else self.train_sums + sums
        self.train_images += len(labels)
        return self.train_sums

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Here, Lightning has already unscaled 16-mixed gradients (a fused optimizer unscales
        inside its step: refused, runs/checks.py)."""
        self._clip_gradients()

    def _clip_gradients(self) -> None:
        """``trainer.gradient_clip_val`` under cnnlab's own optimizer step, with torch's own
        clipping (what Lightning's calls)."""
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
        self.log("step", float(self.optimizer_steps), batch_size=1)
        self.log("epoch", float(self.current_epoch), batch_size=1)

    def on_validation_epoch_end(self) -> None:
        self._log_step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint taken mid-epoch keeps the epoch's running train sums, so a run continued
        from it logs the same epoch means as one that never stopped."""
        checkpoint[STEPS_KEY] = self.optimizer_steps
        if self.train_sums is not None:
            sums = (self.train_sums.cpu(), self.train_images)
            checkpoint["train_sums"] = {"epoch": self.current_epoch, "sums": sums}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_sums = checkpoint.get("train_sums")
        self.resumed_steps = checkpoint_steps(checkpoint)

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
        self.scheduler = self.make_scheduler(optimizer, total_steps=self._planned_steps() + 1)
        # Lightning saves and restores its state in checkpoints; "step": stepped per optimizer
        # step (by Lightning in automatic optimization, by _optimizer_step otherwise)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler,
                                                         "interval": "step"}}  # fmt: skip

    def _planned_steps(self) -> int:
        """The optimizer steps this fit will take, for a schedule over the whole run: the
        epochs' batches (a fresh training loader of the datamodule: Lightning's
        ``estimated_stepping_batches`` sets up the fit loop's data this early, and a resume
        then loses its place in the epoch), an optimizer step per ``accumulate`` of them and
        one at each epoch's end, at most ``max_steps``."""
        trainer = self.trainer
        batches = len(trainer.datamodule.train_dataloader())
        accumulate, max_steps = self.accumulate, self.max_steps
        if self.automatic_optimization:  # Lightning applies limit, accumulation, max_steps
            batches = batches_within(trainer.limit_train_batches, batches) or batches
            accumulate, max_steps = trainer.accumulate_grad_batches, trainer.max_steps
        steps = math.ceil(batches / accumulate) * max(trainer.max_epochs or 0, 0)
        if max_steps >= 0:
            steps = min(steps, max_steps) if steps else max_steps
        if steps < 1:
            raise CnnlabError("scheduler: needs a finite trainer.max_epochs or trainer.max_steps")
        return steps


class LightningStepClassifier(MNISTClassifier):
    """``speed.automatic_optimization=true``: Lightning's automatic optimization, one batch per
    ``training_step``, in Lightning's usual batch flavour. Lightning's gradient accumulation
    needs that flavour: given ``dataloader_iter`` it cannot tell an epoch's last batch in
    advance, and carries that batch's gradient into the next epoch's first step."""

    @property
    def optimizer_steps(self) -> int:
        return self.trainer.global_step  # one optimizer step per Lightning training step

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:  # type: ignore[override]
        loss, outputs = self._loss_and_outputs(batch)
        self._add_to_epoch_sums([outputs])
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


def check_max_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < -1:
        raise CnnlabError(f"trainer.max_steps={steps!r}: must be an integer >= 0, or -1 (no limit)")
    return steps


def checkpoint_steps(checkpoint: dict[str, Any]) -> int:
    """A checkpoint's optimizer steps: cnnlab's count (checkpoints before steps per execution
    have only Lightning's, which counted optimizer steps then)."""
    return int(checkpoint.get(STEPS_KEY, checkpoint.get("global_step", 0)))


def optimizer_config(optimizer: OptimizerFactory) -> dict[str, Any]:
    """A partial optimizer as the config node that makes it (``_target_``, ``_partial_``, its
    keywords), in plain values a ``weights_only`` checkpoint can hold."""
    func = getattr(optimizer, "func", optimizer)
    keywords = getattr(optimizer, "keywords", {})
    plain = {k: list(v) if isinstance(v, tuple | list) else v for k, v in keywords.items()}
    return {"_target_": f"{func.__module__}.{func.__qualname__}", "_partial_": True, **plain}
