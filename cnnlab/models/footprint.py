"""What a network holds in memory, for any network, without building it: its parameters and the
activations one image makes, from one forward pass on PyTorch's ``meta`` device (shapes only, no
memory, no arithmetic). Used to refuse a run this machine cannot hold and to size SLURM jobs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn


@dataclass(frozen=True)
class Footprint:
    params: int  # parameters
    activations: int  # elements of every layer's output for one image (kept for the backward)


def footprint(model: DictConfig, input_shape: tuple[int, int, int]) -> Footprint | None:
    """The footprint of the network ``model`` (its config) on images of ``input_shape``
    (channels, height, width); None for a network that cannot run on the meta device (one
    whose forward reads its values)."""
    outputs: list[int] = []

    def count(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and not list(module.children()):  # leaf layers
            outputs.append(output.numel())

    try:
        with torch.device("meta"):
            net = instantiate(model)
            hooks = [m.register_forward_hook(count) for m in net.modules()]
            net(torch.empty(1, *input_shape))
    except Exception:  # data-dependent control flow, .item(), a custom op without meta kernel
        return None
    for hook in hooks:
        hook.remove()
    return Footprint(sum(p.numel() for p in net.parameters()), sum(outputs))
