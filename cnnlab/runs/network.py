"""The network (``model``), built from its config and checked against the data it will train on.

Any ``nn.Module`` that maps the data's ``(N, C, H, W)`` images to ``(N, classes)`` logits trains
(README, "Your own network"). A network that does not would fail minutes later, deep in
PyTorch or Lightning, with a traceback that does not name the mistake, after the run has
claimed its directory. So every network is built here, by everything that builds one (a run,
a resume's check, a sweep's check of its trials, evaluate, predict), and run once on two blank
images of the data's shape, on the CPU, in eval mode, without gradients: its lazy layers
(``nn.LazyConv2d``, ``nn.LazyLinear``) take their shapes then, like any other network's layers
before training, and a mistake is one line that says what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from cnnlab.data.preparation import Preparation
from cnnlab.errors import CnnlabError, one_line
from cnnlab.runs.checks import ConfigError, target_of

TRIAL_IMAGES = 2  # images in the check's batch: a network that squeezes away N=1 is caught


class NetworkError(ConfigError):
    """A network that cannot be built, or that does not take the data's images to its classes."""


def build_network(model: Mapping[str, Any], data: Mapping[str, Any]) -> nn.Module:
    """The network ``model`` builds, checked to train on the data ``data`` describes (its
    ``channels``, ``image_size`` and ``num_classes``); NetworkError (exit 2) naming the key to
    change if it does not. Its lazy layers are materialised."""
    net = instantiate_network(model)
    shape = Preparation.of_data(data).shape
    output = trial_forward(net, model, shape)
    check_output(output, model, int(data["num_classes"]), shape)
    if not any(p.requires_grad for p in net.parameters()):
        raise NetworkError(
            f"model._target_={model['_target_']}: the network has no trainable parameters (no "
            "layer with weights, or all with requires_grad=False): nothing to train"
        )
    return net


def instantiate_network(model: Mapping[str, Any]) -> nn.Module:
    """``instantiate(model)``, refused in one line unless it is an ``nn.Module``."""
    target_of(model, "model")  # first: a typo or a missing module, named
    try:
        net = instantiate(model)
    except Exception as e:  # the constructor's own (ArchError...) is its line already
        if isinstance(e.__cause__, CnnlabError):
            raise e.__cause__ from None
        raise NetworkError(
            f"model: {model['_target_']} could not be built: {one_line(e)}"
        ) from None
    if not isinstance(net, nn.Module):
        raise NetworkError(
            f"model._target_={model['_target_']}: builds a "
            f"{type(net).__name__}, not a torch.nn.Module (cnnlab trains a module mapping images "
            "to logits)"
        )
    return net


def check_network(cfg: DictConfig) -> None:
    """Build the network of a composed run config and check it against its data, as a run
    would, without training (a sweep checks every trial's so before any trial trains);
    NetworkError (exit 2) if a run of ``cfg`` would fail on its network. The caller's random
    state is kept: building draws initial weights."""
    with torch.random.fork_rng(devices=[]):
        build_network(cfg.model, cfg.data)


def trial_forward(net: nn.Module, model: Mapping[str, Any], shape: tuple[int, ...]) -> Any:
    """The network's output for blank images of ``shape``, in eval mode and left in the mode
    it was in; NetworkError if it does not take them, naming the channels where those differ."""
    training = net.training
    try:
        with torch.no_grad():
            return net.eval()(torch.zeros(TRIAL_IMAGES, *shape))
    except Exception as e:  # whatever the user's forward raises
        target = model["_target_"]
        first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
        if first is not None and first.in_channels not in (0, shape[0]):
            raise NetworkError(
                f"{named(model, first.in_channels)}: the network's first convolution takes "
                f"{first.in_channels} channels, the data's images have {shape[0]} "
                f"(data.channels={shape[0]}): make {target} take {shape[0]}"
            ) from None
        raise NetworkError(
            f"model._target_={target}: the network fails on a batch of the data's images "
            f"({TRIAL_IMAGES}, {', '.join(map(str, shape))}): {one_line(e)}"
        ) from None
    finally:
        net.train(training)


def check_output(output: Any, model: Mapping[str, Any], classes: int, shape: tuple) -> None:
    """NetworkError unless ``output`` is one row of ``classes`` logits per image."""
    target = model["_target_"]
    if not isinstance(output, torch.Tensor):
        raise NetworkError(
            f"model._target_={target}: the network returns a {type(output).__name__}; cnnlab "
            f"needs one tensor of logits, ({TRIAL_IMAGES}, {classes}) for {TRIAL_IMAGES} images"
        )
    if tuple(output.shape) != (TRIAL_IMAGES, classes):
        size = output.shape[-1] if output.dim() else None
        raise NetworkError(
            f"{named(model, size)}: the network returns {tuple(output.shape)} for "
            f"{TRIAL_IMAGES} images of {tuple(shape)}; cnnlab needs ({TRIAL_IMAGES}, {classes}): "
            f"one logit per class, and the data has {classes} classes (data.num_classes)"
        )


def named(model: Mapping[str, Any], value: object) -> str:
    """``model.<key>=<value>`` for the one key of the network's config holding ``value`` (the
    key to change, a user's ``+model.classes=5`` say); else ``model._target_=<target>``."""
    keys = [k for k, v in model.items() if isinstance(v, int) and v == value and v is not True]
    return f"model.{keys[0]}={value}" if len(keys) == 1 else f"model._target_={model['_target_']}"
