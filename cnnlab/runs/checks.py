"""Start-up checks of the composed config: wrong types and unknown keys fail before any work.

Types come from the class each config node instantiates (its ``_target_``: a dataclass's
fields or the constructor's type hints), so there is no second schema to keep in sync and a
swapped-in class is checked against its own parameters. Value ranges are checked by those
classes themselves.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig

from cnnlab.errors import CnnlabError

CHECKED_GROUPS = ("model", "optimizer", "speed", "data", "scheduler", "loss")  # when present
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit (Lightning's seed_everything range)
# Keys of cnnlab 0.1's config and where they live now (an old command or run says which).
MOVED = {
    "model.lr": "optimizer.lr",
    "model.eps": "optimizer.eps",
    "model.weight_decay": "optimizer.weight_decay",
    "model.channels_last": "speed.channels_last",
    "model.fused_adam": "speed.fused_optimizer",
    "model.compile": "speed.compile",
    "model.automatic_optimization": "speed.automatic_optimization",
    "keep_freed_memory": "speed.keep_freed_memory",
    "threads": "speed.threads",
}


class ConfigError(CnnlabError):
    """A config value of the wrong type, an unknown key or an impossible value."""


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad ``key=value`` of the checked groups and trainer."""
    for group in CHECKED_GROUPS:
        if not (node := cfg.get(group)):
            continue
        check_types(node, group, hints_of(get_object(node._target_)))
    check_optimization(cfg)
    check_optimizer_values(cfg.optimizer)
    epochs = cfg.trainer.get("max_epochs")
    if not _is_int(epochs) or epochs < 1:
        raise ConfigError(f"trainer.max_epochs={epochs!r}: must be an integer >= 1")
    if not _is_int(cfg.seed) or not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed={cfg.seed!r}: must be an integer in [0, {MAX_SEED}]")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_optimizer_values(optimizer: DictConfig) -> None:
    """A learning rate of 0 trains nothing and a negative one climbs the loss; torch only
    refuses them once training has started, with a traceback."""
    lr = optimizer.get("lr")
    if isinstance(lr, int | float) and not lr > 0:
        raise ConfigError(f"optimizer.lr={lr!r}: must be > 0")
    for key in ("eps", "weight_decay"):
        value = optimizer.get(key)
        if isinstance(value, int | float) and not value >= 0:
            raise ConfigError(f"optimizer.{key}={value!r}: must be >= 0")


def hints_of(target: object) -> dict[str, object] | None:
    """Parameter name -> type hint for a config node's target; None if it takes any keyword."""
    if dataclasses.is_dataclass(target):
        return typing.get_type_hints(target)
    init = target.__init__ if isinstance(target, type) else target
    params = inspect.signature(init).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    try:
        hints = typing.get_type_hints(init)
    except (NameError, TypeError):  # annotations that do not resolve: names still count
        hints = {}
    return {p.name: hints.get(p.name, object) for p in params if p.name != "self"}


def check_optimization(cfg: DictConfig) -> None:
    """Clipping a fused optimizer's gradients under 16-mixed: the optimizer unscales them
    inside its own step, so they are still scaled where clipping happens (Lightning refuses
    it mid-run, with a traceback). ``trainer.min_steps`` under steps per execution: Lightning
    would count it in executions."""
    clip = cfg.trainer.get("gradient_clip_val")
    fused = cfg.speed.get("fused_optimizer") and "fused" in optimizer_parameters(cfg)
    if clip not in (None, 0) and fused and str(cfg.trainer.precision).startswith("16"):
        raise ConfigError(
            f"trainer.gradient_clip_val={clip!r}: under trainer.precision=16-mixed needs "
            "speed.fused_optimizer=false"
        )
    min_steps, speed = cfg.trainer.get("min_steps"), cfg.speed
    own_step = not speed.automatic_optimization  # (automatic: one optimizer step per training step)
    if min_steps not in (None, -1) and own_step and speed.steps_per_execution != 1:
        raise ConfigError(
            f"trainer.min_steps={min_steps!r}: Lightning counts it in training steps, which "
            "run speed.steps_per_execution optimizer steps each; needs "
            "speed.steps_per_execution=1"
        )


def optimizer_parameters(cfg: DictConfig) -> set[str]:
    return set(inspect.signature(get_object(cfg.optimizer._target_)).parameters)


def check_types(node: Mapping, prefix: str, hints: dict[str, object] | None) -> None:
    """Every key of ``node`` must be a known parameter and its value of the annotated type."""
    for key, value in node.items():
        if key.startswith("_") or hints is None:
            continue
        if key not in hints:
            raise ConfigError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(hints))})")
        if isinstance(value, Mapping) and "_target_" in value:  # a node of its own (data.augment)
            check_types(value, f"{prefix}.{key}", hints_of(get_object(value._target_)))
            continue
        if not _matches(value, hints[key]):
            raise ConfigError(f"{prefix}.{key}={value!r}: expected {_type_name(hints[key])}")


def _options(hint: object) -> tuple[object, ...]:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return typing.get_args(hint) if union else (hint,)


def _matches(value: object, hint: object) -> bool:
    for option in _options(hint):
        if option is object or (option is type(None) and value is None):
            return True
        if typing.get_origin(option) in (tuple, list):  # betas=[0.9,0.999]
            if isinstance(value, ListConfig | list | tuple):
                return True
            continue
        if not isinstance(option, type):  # a hint we cannot check (a TypeVar, a Tensor alias)
            return True
        if isinstance(value, bool):  # bool is an int subclass; accept it only where asked
            if option is bool:
                return True
            continue
        wanted = (int, float) if option is float else option
        if isinstance(value, wanted):
            return True
    return False


def _type_name(hint: object) -> str:
    return " or ".join(getattr(option, "__name__", str(option)) for option in _options(hint))
