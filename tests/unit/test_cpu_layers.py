"""speed.cpu_layers: cnnlab's Dropout, Flatten and pool-then-ReLU compute what PyTorch's do,
only faster on a CPU, and swap into any network without changing its parameters."""

import pytest
import torch
from torch import nn

from cnnlab.models.keras_cnn import KerasCNN
from cnnlab.models.torch_mnist import TorchMNIST
from cnnlab.perf.cpu_layers import LEVELS, Dropout, Flatten, MaxPoolReLU, use_cpu_layers

CHANNELS_LAST = torch.channels_last


def activations(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pooled activations of the seed model, laid out as the fast path holds them."""
    x = torch.rand(128, 64, 12, 12, dtype=dtype) + 0.5
    return x.contiguous(memory_format=CHANNELS_LAST).requires_grad_()


@pytest.mark.parametrize("p", [0.25, 0.5, 0.1])
def test_dropout_drops_a_fraction_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    x = activations()
    y = Dropout(p).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.003)  # 1.2M draws: sd ~0.0005
    kept = y[y != 0] / x[y != 0]
    drop_rate = round(p * LEVELS) / LEVELS  # 0.25 and 0.5 exactly
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - drop_rate)))
    assert y.is_contiguous(memory_format=CHANNELS_LAST)


def test_dropout_gradient_is_its_mask_and_the_draws_follow_the_seed():
    torch.manual_seed(1)
    x = activations(torch.bfloat16)
    y = Dropout(0.25).train()(x)
    y.sum().backward()
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(x.grad, (y / x).detach())  # d(x * mask)/dx = mask
    torch.manual_seed(1)
    again = Dropout(0.25).train()(activations(torch.bfloat16))
    assert torch.equal((again == 0), (y == 0))


def test_dropout_draws_are_independent_across_bits_and_positions():
    torch.manual_seed(2)
    kept = Dropout(0.5).train()(torch.ones(4, 100_000)) != 0
    for position in range(4):  # one 64-bit draw serves 4 neighbours: each is a fair coin
        assert kept[:, position::4].float().mean().item() == pytest.approx(0.5, abs=0.01)
    both = (kept[:, :-1] & kept[:, 1:]).float().mean().item()
    assert both == pytest.approx(0.25, abs=0.01)  # neighbours are not correlated


def test_dropout_is_the_identity_in_eval_and_for_p_zero():
    x = activations()
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_dropout_handles_odd_sizes_and_strided_inputs():
    torch.manual_seed(3)
    x = torch.ones(7, 13)[:, ::2]  # 49 elements, not contiguous
    y = Dropout(0.25).train()(x)
    assert y.shape == x.shape
    assert set(y.unique().tolist()) == {0.0, torch.tensor(4 / 3).item()}


def test_flatten_matches_nn_flatten_and_hands_back_a_channels_last_gradient():
    x = activations()
    ours, theirs = Flatten()(x), nn.Flatten()(x)
    assert torch.equal(ours, theirs)  # channel-major order: checkpoints keep their meaning
    weights = torch.randn_like(ours)
    (grad,) = torch.autograd.grad((ours * weights).sum(), x)
    (expected,) = torch.autograd.grad((theirs * weights).sum(), x)
    assert torch.equal(grad, expected)
    assert grad.is_contiguous(memory_format=CHANNELS_LAST)
    assert not expected.is_contiguous(memory_format=CHANNELS_LAST)  # what made pooling copy


def test_the_swap_replaces_pytorchs_layers_in_any_network_keeping_every_parameter_name():
    net = KerasCNN(conv_blocks=2, padding="same")
    names = list(net.state_dict())
    use_cpu_layers(net)
    assert list(net.state_dict()) == names  # checkpoints interchangeable
    layers = dict(net.features.named_children())
    assert isinstance(layers["relu2"], nn.Identity) and isinstance(layers["pool1"], MaxPoolReLU)
    assert isinstance(layers["relu1"], nn.ReLU)  # feeds a conv, not a pool: stays
    assert type(net.classifier.flatten) is Flatten and type(layers["dropout1"]) is Dropout
    example = TorchMNIST()  # functional ReLU and pooling: only its dropouts are modules
    use_cpu_layers(example)
    assert type(example.dropout1) is Dropout and type(example.conv1) is nn.Conv2d


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("knobs", [{}, {"conv_blocks": 2, "padding": "same", "pool_size": 3}])
def test_cpu_layers_give_the_lesson_networks_values_and_gradients_bit_for_bit(dtype, knobs):
    """Pool-then-ReLU and the layout-keeping Flatten against PyTorch's own layers, in eval
    (dropout is the one layer that draws other random numbers: tested above)."""
    torch.manual_seed(0)
    plain = KerasCNN(**knobs).to(dtype, memory_format=CHANNELS_LAST).eval()
    fast = KerasCNN(**knobs).to(dtype, memory_format=CHANNELS_LAST).eval()
    fast.load_state_dict(plain.state_dict())
    use_cpu_layers(fast)
    x = torch.randn(16, 1, 28, 28, dtype=dtype).contiguous(memory_format=CHANNELS_LAST)
    outputs, grads = [], []
    for net in (plain, fast):
        out = net.features(x)
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out)
        grads.append([p.grad.clone() for p in net.features.parameters()])
    assert torch.equal(*outputs)
    assert (outputs[0] > 0).any() and (outputs[0] == 0).any()  # ReLU did cut something
    for fast_grad, plain_grad in zip(*grads, strict=True):
        assert torch.equal(fast_grad, plain_grad)
