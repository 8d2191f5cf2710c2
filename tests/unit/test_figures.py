"""The figures' numbers: confusion counts, confident mistakes, the feature-map stages."""

import pytest
import torch

from cnnlab.insight.figures import (
    confident_mistakes,
    confusion,
    feature_stages,
    first_conv,
    per_class_accuracy,
)
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.models.mlp import MLP
from cnnlab.models.torch_mnist import TorchMNIST
from cnnlab.perf.cpu_layers import use_cpu_layers


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


def test_feature_stages_are_what_leaves_each_conv_and_pool_of_any_network():
    net = KerasCNN().eval()
    image = torch.rand(1, 28, 28)
    stages = feature_stages(net, image)
    assert [(name, tuple(maps.shape)) for name, maps in stages] == [
        ("features.conv1", (32, 26, 26)), ("features.conv2", (64, 24, 24)),
        ("features.pool1", (64, 12, 12)),
    ]  # fmt: skip
    assert stages[2][1].min() >= 0  # pooled after the ReLU
    use_cpu_layers(net)  # the pool then applies the ReLU: the same maps
    for (name, maps), (fast_name, fast_maps) in zip(
        stages, feature_stages(net, image), strict=True
    ):
        assert name == fast_name and torch.equal(maps, fast_maps)
    assert [name for name, _ in feature_stages(TorchMNIST().eval(), image)] == ["conv1", "conv2"]
    assert feature_stages(MLP(), image) == [] and first_conv(MLP()) is None
