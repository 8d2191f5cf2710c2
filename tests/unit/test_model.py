"""The model mirrors the lesson's Keras model: layers, shapes, parameter count, init, knobs."""

import re

import pytest
import torch

from cnnlab.models.arch import Arch, ArchError
from cnnlab.models.keras_cnn import KerasCNN


def layer_shapes(net: KerasCNN, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, layer in [*net.features.named_children(), *net.classifier.named_children()]:
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    return shapes


def test_seed_model_has_keras_layers_shapes_and_parameter_count():
    net = KerasCNN(Arch())
    assert sum(p.numel() for p in net.parameters()) == 1_199_882
    shapes = layer_shapes(net.eval(), torch.zeros(1, 1, 28, 28))
    # Keras summary (NHWC): (26,26,32) (24,24,64) (12,12,64) 9216 128 10
    assert shapes["conv1"] == (32, 26, 26)
    assert shapes["conv2"] == (64, 24, 24)
    assert shapes["pool1"] == (64, 12, 12)
    assert shapes["flatten"] == (9216,)
    assert shapes["dense1"] == (128,)
    assert shapes["output"] == (10,)


def test_keras_init_is_glorot_uniform_with_zero_bias():
    torch.manual_seed(0)
    dense = KerasCNN(Arch()).classifier.dense1
    limit = (6 / (9216 + 128)) ** 0.5
    assert dense.weight.abs().max() <= limit
    assert dense.weight.abs().max() > 0.95 * limit
    assert torch.count_nonzero(dense.bias) == 0


@pytest.mark.parametrize(
    ("arch", "feature_shape"),
    [
        (Arch(filters=64), (128, 12, 12)),
        (Arch(kernel_size=5), (64, 10, 10)),
        (Arch(pool_size=3), (64, 8, 8)),
        (Arch(padding="same"), (64, 14, 14)),  # zero padding keeps 28x28 until the pool
        (Arch(padding="same", stride=2), (64, 3, 3)),  # 28 -> 14 -> 7, pooled to 3
        (Arch(conv_blocks=2), (256, 4, 4)),  # 26,24 -> 12 -> 10,8 -> 4; filters 32,64,128,256
    ],
)
def test_knobs_change_the_feature_map_as_the_lesson_explains(arch, feature_shape):
    net = KerasCNN(arch)
    assert arch.feature_shape() == feature_shape
    assert net.features(torch.zeros(2, 1, 28, 28)).shape[1:] == feature_shape
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_dense_layers_stack():
    net = KerasCNN(Arch(dense_layers=3, dense_units=32))
    names = [n for n, m in net.classifier.named_children() if isinstance(m, torch.nn.Linear)]
    assert names == ["dense1", "dense2", "dense3", "output"]


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        (Arch(filters=0), "model.filters=0: must be >= 1"),
        (Arch(dropout=1.0), "model.dropout=1.0: must be in [0, 1)"),
        (Arch(dense_dropout=-0.1), "model.dense_dropout=-0.1"),
        (Arch(padding="full"), "model.padding='full'"),
        (Arch(kernel_size=29), "model.kernel_size=29"),
        (Arch(pool_size=25), "model.pool_size=25"),
        (Arch(conv_blocks=3), "model.kernel_size=3"),
    ],
)
def test_impossible_architectures_name_the_key(arch, message):
    with pytest.raises(ArchError, match=re.escape(message)):
        KerasCNN(arch)
