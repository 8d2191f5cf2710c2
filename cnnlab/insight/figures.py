"""The ``Figures`` callback: lesson-style figures as PNGs in the run directory and in TensorBoard.

Drawn once per run, never inside the training loop: a grid of training samples when training
starts; after testing, the test predictions, the most confident mistakes, the confusion matrix,
per-class accuracy, the first conv layer's filters and one test image's feature maps. During
testing the only extra work is keeping each batch's predicted class and confidence, captured by
a forward hook from the forward pass the test step already does. ``callbacks.figures=null``
removes the callback, and with it every cost.

Any network: classes are named as the module names them (``data.class_names``), and the
feature maps are what forward hooks see leave each ``Conv2d`` and pooling layer, in the order
the network runs them. A network without a convolution gets no filters or feature maps, said
in one line.
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

from cnnlab.errors import CnnlabError
from cnnlab.insight.plots import (
    RIGHT,
    WRONG,
    accuracy_figure,
    confusion_figure,
    feature_maps_figure,
    filters_figure,
    image_grid,
    pixels,
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


FEATURE_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)  # what the feature-maps figure shows


@torch.no_grad()
def feature_stages(net: nn.Module, image: Tensor) -> list[tuple[str, Tensor]]:
    """The feature maps of one image (C, H, W) as they leave each ``Conv2d`` and pooling layer
    of ``net``, in the order the forward pass runs them, named as ``print(net)`` names them
    (a conv's maps are before its activation)."""
    stages: list[tuple[str, Tensor]] = []
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out, name=name: stages.append((name, out[0])))
        for name, layer in net.named_modules()
        if isinstance(layer, FEATURE_LAYERS)
    ]
    try:
        net(image[None])
    finally:
        for hook in hooks:
            hook.remove()
    return stages


def first_conv(module: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first ``nn.Conv2d`` (its short name and the layer): the filters that see pixels."""
    return next(
        ((name.rsplit(".", 1)[-1], m) for name, m in module.named_modules()
         if isinstance(m, nn.Conv2d)),
        None,
    )  # fmt: skip


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
        names = [pl_module.class_names[i] for i in labels]
        title = "Training samples (the lesson's plt.imshow + plt.colorbar)"
        shown = pixels(images.float().numpy())
        grid = image_grid(shown, names, None, title, colorbar=True, cmap="viridis")
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
        names = pl_module.class_names
        self._draw_predictions(trainer, names, images, labels, preds, confidence)
        matrix = confusion(labels, preds, len(names))
        self._publish(trainer, "confusion_matrix", confusion_figure(matrix.numpy(), names))
        accuracy = per_class_accuracy(matrix).numpy()
        self._publish(trainer, "per_class_accuracy", accuracy_figure(accuracy, names))
        self._draw_network(trainer, pl_module, images[0])
        log.info("Figures of the test run drawn in %.1f s: %s", time.perf_counter() - started,
                 self.dirpath)  # fmt: skip

    def _draw_predictions(
        self, trainer: L.Trainer, names: list[str], images: Tensor, labels: Tensor,
        preds: Tensor, conf: Tensor,
    ) -> None:  # fmt: skip
        """The first test images with their predictions, and the most confident mistakes."""
        first = torch.arange(min(self.num_images, len(images)))
        mistakes = confident_mistakes(labels, preds, conf, self.num_mistakes)
        for name, chosen, title in (
            ("test_predictions", first, "Test predictions (red: wrong, true class in brackets)"),
            ("confident_mistakes", mistakes, "The most confident mistakes"),
        ):
            if len(chosen):
                picked = (images[chosen], labels[chosen], preds[chosen], conf[chosen])
                self._publish(trainer, name, self._predictions_grid(names, *picked, title))

    @staticmethod
    def _predictions_grid(
        names: list[str], images: Tensor, labels: Tensor, preds: Tensor, conf: Tensor, title: str
    ) -> Figure:
        titles, colours = [], []
        for label, pred, p in zip(labels.tolist(), preds.tolist(), conf.tolist(), strict=True):
            wrong = f"\n({names[label]})" if pred != label else ""
            titles.append(f"{names[pred]} {p:.0%}{wrong}")
            colours.append(WRONG if wrong else RIGHT)
        return image_grid(pixels(images.float().numpy()), titles, colours, title)

    def _draw_network(
        self, trainer: L.Trainer, pl_module: L.LightningModule, image: Tensor
    ) -> None:
        """The first conv layer's filters and the feature maps of one test image."""
        if (found := first_conv(pl_module.net)) is None:
            log.info("Figures: %s has no Conv2d layer; no filters or feature maps drawn",
                     type(pl_module.net).__name__)  # fmt: skip
            return
        name, conv = found
        weight = conv.weight.detach().cpu().numpy()
        self._publish(trainer, "conv1_filters", filters_figure(weight, name))
        stages = feature_stages(pl_module.net, image.to(pl_module.device))
        stages_np = [(n, maps.cpu().numpy()) for n, maps in stages]
        maps = feature_maps_figure(pixels(image.float().numpy()), stages_np, self.channels)
        self._publish(trainer, "feature_maps", maps)

    def _publish(self, trainer: L.Trainer, name: str, fig: Figure) -> None:
        """Save as PNG and add to every TensorBoard logger, at the module's optimizer step."""
        self.dirpath.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.dirpath / f"{name}.png", dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(f"figures/{name}", fig, trainer.global_step)
