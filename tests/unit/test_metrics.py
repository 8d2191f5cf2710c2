"""The epoch's loss and accuracy: the numbers torchmetrics' own classes give, one update a batch."""

import math

import torch
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cnnlab.models.metrics import LossAndAccuracy


def test_equals_torchmetrics_mean_loss_and_micro_accuracy_over_uneven_batches():
    torch.manual_seed(0)
    ours, mean, accuracy = LossAndAccuracy(), MeanMetric(), MulticlassAccuracy(10, average="micro")
    for size in (128, 128, 37):  # an epoch's short last batch weighs what it holds
        logits, labels = torch.randn(size, 10), torch.randint(0, 10, (size,))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        ours.update(loss, logits, labels)
        mean.update(loss, size)
        accuracy.update(logits, labels)
    result = ours.compute()
    assert float(result["loss"]) == float(mean.compute())
    assert float(result["acc"]) == float(accuracy.compute())
    ours.reset()
    assert int(ours.seen) == 0 and float(ours.loss_sum) == 0


def test_a_non_finite_loss_shows_and_no_graph_is_kept():
    ours = LossAndAccuracy()
    logits = torch.randn(4, 10, requires_grad=True)
    ours.update(logits.sum() * math.nan, logits, torch.zeros(4, dtype=torch.long))
    assert math.isnan(float(ours.compute()["loss"]))
    assert not ours.loss_sum.requires_grad  # updated without autograd: no step's graph kept
