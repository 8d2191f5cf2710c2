"""The networks: the lesson's Keras model (layers, shapes, parameter count, init, knobs), and any
other network that maps (N, C, H, W) images to (N, classes) logits."""

import re

import pytest
import torch

from cnnlab.models.arch import ArchError
from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.models.mlp import MLP
from cnnlab.models.torch_mnist import TorchMNIST


def layer_shapes(net: KerasCNN, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, layer in [*net.features.named_children(), *net.classifier.named_children()]:
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    return shapes


def test_lesson_model_has_keras_layers_shapes_and_parameter_count():
    net = KerasCNN()
    assert sum(p.numel() for p in net.parameters()) == 1_199_882
    shapes = layer_shapes(net.eval(), torch.zeros(1, 1, 28, 28))
    # Keras summary (NHWC): (26,26,32) (24,24,64) (12,12,64) 9216 128 10
    assert shapes["conv1"] == (32, 26, 26)
    assert shapes["conv2"] == (64, 24, 24)
    assert shapes["pool1"] == (64, 12, 12)
    assert shapes["flatten"] == (9216,)
    assert shapes["dense1"] == (128,)
    assert shapes["output"] == (10,)
    assert all(type(m).__module__.startswith("torch.nn") for m in net.modules() if m is not net)


def test_keras_init_is_glorot_uniform_with_zero_bias():
    torch.manual_seed(0)
    dense = KerasCNN().classifier.dense1
    limit = (6 / (9216 + 128)) ** 0.5
    assert dense.weight.abs().max() <= limit
    assert dense.weight.abs().max() > 0.95 * limit
    assert torch.count_nonzero(dense.bias) == 0


@pytest.mark.parametrize(
    ("knobs", "feature_shape"),
    [
        ({"filters": 64}, (128, 12, 12)),
        ({"kernel_size": 5}, (64, 10, 10)),
        ({"pool_size": 3}, (64, 8, 8)),
        ({"padding": "same"}, (64, 14, 14)),  # zero padding keeps 28x28 until the pool
        ({"padding": "same", "stride": 2}, (64, 3, 3)),  # 28 -> 14 -> 7, pooled to 3
        ({"conv_blocks": 2}, (256, 4, 4)),  # 26,24 -> 12 -> 10,8 -> 4; filters 32,64,128,256
        ({"in_channels": 3, "image_size": 32}, (64, 14, 14)),  # the data's shape, not 28x28
    ],
)
def test_knobs_change_the_feature_map_as_the_lesson_explains(knobs, feature_shape):
    net = KerasCNN(**knobs)
    images = torch.zeros(2, knobs.get("in_channels", 1), *[knobs.get("image_size", 28)] * 2)
    assert net.feature_shape == feature_shape
    assert net.features(images).shape[1:] == feature_shape
    assert net(images).shape == (2, 10)


def test_dense_layers_stack_and_classes_come_from_the_data():
    net = KerasCNN(dense_layers=3, dense_units=32, num_classes=7)
    names = [n for n, m in net.classifier.named_children() if isinstance(m, torch.nn.Linear)]
    assert names == ["dense1", "dense2", "dense3", "output"]
    assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 7)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"filters": 0}, "model.filters=0: must be >= 1"),
        ({"dropout": 1.0}, "model.dropout=1.0: must be in [0, 1)"),
        ({"dense_dropout": -0.1}, "model.dense_dropout=-0.1"),
        ({"padding": "full"}, "model.padding='full'"),
        ({"kernel_size": 29}, "model.kernel_size=29"),
        ({"pool_size": 25}, "model.pool_size=25"),
        ({"conv_blocks": 3}, "model.kernel_size=3"),
    ],
)
def test_impossible_architectures_name_the_key(knobs, message):
    with pytest.raises(ArchError, match=re.escape(message)):
        KerasCNN(**knobs)


def test_the_other_networks_map_images_to_logits():
    """PyTorch's example network is the lesson's, written PyTorch's way; the MLP has no conv."""
    example = TorchMNIST()
    assert sum(p.numel() for p in example.parameters()) == 1_199_882
    rgb = TorchMNIST(in_channels=3, image_size=32, num_classes=5)
    assert rgb(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    mlp = MLP(hidden=[64])
    assert mlp(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 64 + 64 + 64 * 10 + 10
