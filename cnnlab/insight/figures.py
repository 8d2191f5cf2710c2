"""The ``Figures`` callback: lesson-style figures as PNGs in the run directory and in TensorBoard.

Drawn once per run, never inside the training loop: a grid of training samples when training
starts; after testing, the test predictions, the most confident mistakes, the confusion matrix,
per-class accuracy, the first conv layer's filters and one test image's feature maps. During
testing the only extra work is keeping each batch's predicted class and confidence, captured by
a forward hook from the forward pass the test step already does. ``callbacks.figures=null``
removes the callback, and with it every cost.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import Tensor, nn

from cnnlab import CLASS_NAMES
from cnnlab.errors import CnnlabError
from cnnlab.insight.plots import (
    RIGHT,
    WRONG,
    accuracy_figure,
    confusion_figure,
    feature_maps_figure,
    filters_figure,
    image_grid,
)

log = logging.getLogger(__name__)


def confusion(labels: Tensor, preds: Tensor, classes: int) -> Tensor:
    """(classes, classes) counts; row = true class, column = predicted class."""
    return torch.bincount(labels * classes + preds, minlength=classes * classes).view(
        classes, classes
    )


def per_class_accuracy(matrix: Tensor) -> Tensor:
    """Correct / total for each true class (0 for a class with no test images)."""
    return matrix.diag() / matrix.sum(dim=1).clamp(min=1)


def confident_mistakes(labels: Tensor, preds: Tensor, confidence: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` wrong predictions made with the highest confidence, highest first."""
    wrong = (preds != labels).nonzero().squeeze(1)
    return wrong[confidence[wrong].argsort(descending=True)[:k]]


@torch.no_grad()
def feature_stages(features: nn.Sequential, image: Tensor) -> list[tuple[str, Tensor]]:
    """The feature maps of one image (1, H, W) after each conv's ReLU and each pool layer.

    Named as the model names its layers ("conv1+relu1", "pool1"), so the figure reads like
    ``print(model)``.
    """
    stages, x, conv = [], image[None], ""
    for name, layer in features.named_children():
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            conv = name
        elif isinstance(layer, nn.ReLU | nn.MaxPool2d):
            stages.append((f"{conv}+{name}" if isinstance(layer, nn.ReLU) else name, x[0]))
    return stages


def first_conv(module: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``nn.Conv2d`` (its short name and the layer): the filters that see pixels."""
    return next(
        (name.rsplit(".", 1)[-1], m)
        for name, m in module.named_modules()
        if isinstance(m, nn.Conv2d)
    )


class Figures(L.Callback):
    """Writes ``<dirpath>/<name>.png`` and the TensorBoard image ``figures/<name>`` for each figure.

    Only the global-zero process draws, so multi-GPU runs write each figure once.
    """

    def __init__(
        self, dirpath: str, num_images: int = 25, num_mistakes: int = 16, channels: int = 8
    ) -> None:
        for key, value in (("num_images", num_images), ("num_mistakes", num_mistakes),
                           ("channels", channels)):  # fmt: skip
            if value < 1:
                raise CnnlabError(f"callbacks.figures.{key}={value}: must be >= 1")
        self.dirpath = Path(dirpath)
        self.num_images, self.num_mistakes, self.channels = num_images, num_mistakes, channels
        self._batches: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self._hook: Any = None
        self._probs: Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        images, labels = trainer.train_dataloader.first_batch()
        images, labels = images[: self.num_images].cpu(), labels[: self.num_images].cpu()
        names = [CLASS_NAMES[i] for i in labels]
        title = "Training samples (the lesson's plt.imshow + plt.colorbar)"
        grid = image_grid(images[:, 0].numpy(), names, None, title, colorbar=True, cmap="viridis")
        self._publish(trainer, "train_samples", grid)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches = []
        self._hook = pl_module.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self._probs = output.detach().softmax(dim=-1)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        images, labels = batch
        confidence, preds = self._probs.max(dim=-1)
        self._batches.append((images, labels, preds, confidence))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._hook.remove()
        batches, self._batches = self._batches, []
        if not trainer.is_global_zero or not batches:
            return
        started = time.perf_counter()
        images, labels, preds, confidence = (torch.cat(t).cpu() for t in zip(*batches, strict=True))
        self._draw_predictions(trainer, images, labels, preds, confidence)
        matrix = confusion(labels, preds, len(CLASS_NAMES))
        self._publish(trainer, "confusion_matrix", confusion_figure(matrix.numpy(), CLASS_NAMES))
        accuracy = per_class_accuracy(matrix).numpy()
        self._publish(trainer, "per_class_accuracy", accuracy_figure(accuracy, CLASS_NAMES))
        self._draw_network(trainer, pl_module, images[0])
        log.info("Figures of the test run drawn in %.1f s: %s", time.perf_counter() - started,
                 self.dirpath)  # fmt: skip

    def _draw_predictions(
        self, trainer: L.Trainer, images: Tensor, labels: Tensor, preds: Tensor, conf: Tensor
    ) -> None:
        """The first test images with their predictions, and the most confident mistakes."""
        first = torch.arange(min(self.num_images, len(images)))
        mistakes = confident_mistakes(labels, preds, conf, self.num_mistakes)
        for name, chosen, title in (
            ("test_predictions", first, "Test predictions (red: wrong, true class in brackets)"),
            ("confident_mistakes", mistakes, "The most confident mistakes"),
        ):
            if len(chosen):
                picked = (images[chosen], labels[chosen], preds[chosen], conf[chosen])
                self._publish(trainer, name, self._predictions_grid(*picked, title))

    @staticmethod
    def _predictions_grid(
        images: Tensor, labels: Tensor, preds: Tensor, conf: Tensor, title: str
    ) -> Figure:
        titles, colours = [], []
        for label, pred, p in zip(labels.tolist(), preds.tolist(), conf.tolist(), strict=True):
            wrong = f"\n({CLASS_NAMES[label]})" if pred != label else ""
            titles.append(f"{CLASS_NAMES[pred]} {p:.0%}{wrong}")
            colours.append(WRONG if wrong else RIGHT)
        return image_grid(images[:, 0].numpy(), titles, colours, title)

    def _draw_network(
        self, trainer: L.Trainer, pl_module: L.LightningModule, image: Tensor
    ) -> None:
        """The first conv layer's filters and the feature maps of one test image."""
        name, conv = first_conv(pl_module)
        weight = conv.weight.detach().cpu().numpy()
        self._publish(trainer, "conv1_filters", filters_figure(weight, name))
        stages = feature_stages(pl_module.net.features, image.to(pl_module.device))
        stages_np = [(n, maps.cpu().numpy()) for n, maps in stages]
        maps = feature_maps_figure(image[0].numpy(), stages_np, self.channels)
        self._publish(trainer, "feature_maps", maps)

    def _publish(self, trainer: L.Trainer, name: str, fig: Figure) -> None:
        """Save as PNG and add to every TensorBoard logger, at the module's optimizer step."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.dirpath / f"{name}.png", dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(
                    f"figures/{name}", fig, trainer.lightning_module.optimizer_steps
                )
