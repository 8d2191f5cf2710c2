"""The figures' numbers: confusion counts, confident mistakes, the feature-map stages."""

import pytest
import torch

from cnnlab.insight.figures import confident_mistakes, confusion, feature_stages, per_class_accuracy
from cnnlab.models.arch import Arch
from cnnlab.models.keras_cnn import KerasCNN


def test_confusion_counts_and_per_class_accuracy():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    preds = torch.tensor([0, 1, 1, 1, 0, 2])
    matrix = confusion(labels, preds, 3)
    assert matrix.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    assert per_class_accuracy(matrix).tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert per_class_accuracy(confusion(labels[:2], preds[:2], 3)).tolist() == [0.5, 0, 0]


def test_confident_mistakes_are_the_wrong_ones_most_confident_first():
    labels = torch.tensor([3, 3, 3, 3, 3])
    preds = torch.tensor([3, 5, 5, 3, 8])
    conf = torch.tensor([0.99, 0.6, 0.9, 0.7, 0.8])
    assert confident_mistakes(labels, preds, conf, k=2).tolist() == [2, 4]
    assert confident_mistakes(labels, labels, conf, k=2).tolist() == []


def test_feature_stages_follow_the_lessons_layers():
    stages = feature_stages(KerasCNN(Arch()).features.eval(), torch.rand(1, 28, 28))
    assert [(name, tuple(maps.shape)) for name, maps in stages] == [
        ("conv1+relu1", (32, 26, 26)), ("conv2+relu2", (64, 24, 24)), ("pool1", (64, 12, 12)),
    ]  # fmt: skip
    assert all(maps.min() >= 0 for _, maps in stages)  # after ReLU
