"""Start-up checks of the composed config: wrong types and unknown keys fail before any work.

Types come from the constructors the config instantiates (their type hints), so there is no
second schema to keep in sync. Value ranges are checked by those constructors themselves.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping

from omegaconf import DictConfig

from cnnlab.data.datamodule import MNISTDataModule
from cnnlab.errors import CnnlabError
from cnnlab.models.arch import Arch
from cnnlab.models.classifier import MNISTClassifier


class ConfigError(CnnlabError):
    """A config value of the wrong type, an unknown key or an impossible value."""


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad ``key=value`` of the model, data and trainer."""
    model_hints = {**typing.get_type_hints(MNISTClassifier.__init__), **typing.get_type_hints(Arch)}
    del model_hints["arch"], model_hints["return"]
    check_types(cfg.model, "model", model_hints)
    check_types(cfg.data, "data", typing.get_type_hints(MNISTDataModule.__init__))
    check_optimization(cfg)
    epochs = cfg.trainer.get("max_epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"trainer.max_epochs={epochs!r}: must be an integer >= 1")


def check_optimization(cfg: DictConfig) -> None:
    """Gradient clipping and accumulation are Lightning's automatic optimization's features."""
    if cfg.model.get("automatic_optimization", True):
        return
    clip = cfg.trainer.get("gradient_clip_val")
    if clip not in (None, 0):  # Lightning refuses to clip for a fused optimizer in mixed precision
        raise ConfigError(f"trainer.gradient_clip_val={clip!r}: needs "
                          "model.automatic_optimization=true model.fused_adam=false")  # fmt: skip
    accumulate = cfg.trainer.get("accumulate_grad_batches")
    if accumulate not in (None, 1):
        raise ConfigError(f"trainer.accumulate_grad_batches={accumulate!r}: needs "
                          "model.automatic_optimization=true")  # fmt: skip


def check_types(node: Mapping, prefix: str, hints: dict[str, object]) -> None:
    """Every key of ``node`` must be a known parameter and its value of the annotated type."""
    for key, value in node.items():
        if key.startswith("_"):
            continue
        if key not in hints:
            raise ConfigError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(hints))})")
        if not _matches(value, hints[key]):
            raise ConfigError(f"{prefix}.{key}={value!r}: expected {_type_name(hints[key])}")


def _options(hint: object) -> tuple[object, ...]:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return typing.get_args(hint) if union else (hint,)


def _matches(value: object, hint: object) -> bool:
    for option in _options(hint):
        if option is object or (option is type(None) and value is None):
            return True
        if isinstance(value, bool):  # bool is an int subclass; accept it only where asked
            if option is bool:
                return True
            continue
        wanted = (int, float) if option is float else option
        if isinstance(option, type) and isinstance(value, wanted):
            return True
    return False


def _type_name(hint: object) -> str:
    return " or ".join(getattr(option, "__name__", str(option)) for option in _options(hint))
