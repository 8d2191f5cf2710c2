"""The epoch's loss and accuracy, what Keras' ``fit`` prints after every epoch, as one metric.

A torchmetrics ``Metric`` (its documented way to write one: ``add_state`` and ``update``), so
Lightning moves it with the module and, under DDP, its states are summed across ranks before
``compute``. One update a batch with three sums costs a fraction of what torchmetrics'
``MeanMetric`` plus ``MulticlassAccuracy`` do (their input checks and per-class statistics): a
training step runs it every batch, and every small tensor op there is paid in a cold cache,
right after the network (docs/speed.md).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class LossAndAccuracy(Metric):
    """The mean loss (weighted by batch size) and the accuracy (top-1) of everything updated
    since the last ``reset``. ``update`` runs without autograd (torchmetrics' default), so the
    step's loss and logits go in as they are. A NaN loss shows as a NaN mean."""

    full_state_update = False  # each update needs only its own batch

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("seen", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        self.loss_sum += loss * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.seen += len(labels)

    def compute(self) -> dict[str, Tensor]:
        return {"loss": self.loss_sum / self.seen, "acc": self.correct / self.seen}
