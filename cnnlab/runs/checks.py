"""Start-up checks of the composed config: wrong types and unknown keys fail before any work.

Types come from the class each config node instantiates (its ``_target_``: a dataclass's
fields or the constructor's type hints), so there is no second schema to keep in sync and a
swapped-in class is checked against its own parameters. Value ranges are checked by those
classes themselves.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig

from cnnlab.errors import CnnlabError, one_line

CHECKED_GROUPS = ("model", "optimizer", "speed", "data", "scheduler", "loss")  # when present
CLIP_ALGORITHMS = ("norm", "value")  # Lightning's gradient_clip_algorithm values
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit (Lightning's seed_everything range)


class ConfigError(CnnlabError):
    """A config value of the wrong type, an unknown key or an impossible value."""


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad ``key=value`` of the checked groups and trainer."""
    for group in CHECKED_GROUPS:
        if not (node := cfg.get(group)):
            continue
        check_types(node, group, hints_of(target_of(node, group)))
    check_optimizer_values(cfg.optimizer)
    smoothing = cfg.loss.get("label_smoothing") if cfg.get("loss") else None
    if isinstance(smoothing, int | float) and not 0 <= smoothing < 1:
        raise ConfigError(f"loss.label_smoothing={smoothing!r}: must be in [0, 1)")
    check_trainer_values(cfg.trainer)
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
    if isinstance(lr, int | float) and not 0 < lr < math.inf:
        raise ConfigError(f"optimizer.lr={lr!r}: must be > 0 and finite")
    for key in ("eps", "weight_decay"):
        value = optimizer.get(key)
        if isinstance(value, int | float) and not 0 <= value < math.inf:
            raise ConfigError(f"optimizer.{key}={value!r}: must be >= 0 and finite")


def check_trainer_values(trainer: DictConfig) -> None:
    """The Trainer's optimization arguments, refused in one line before Lightning refuses them
    mid-start (some with a traceback) or accepts a negative clip."""
    clip, algorithm = trainer.get("gradient_clip_val"), trainer.get("gradient_clip_algorithm")
    if clip is not None and not (isinstance(clip, int | float) and 0 <= clip < math.inf):
        raise ConfigError(f"trainer.gradient_clip_val={clip!r}: must be >= 0")
    if algorithm is not None and algorithm not in CLIP_ALGORITHMS:
        raise ConfigError(
            f"trainer.gradient_clip_algorithm={algorithm!r}: must be one of "
            f"{', '.join(CLIP_ALGORITHMS)}"
        )
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if not _is_int(accumulate) or accumulate < 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r}: must be an integer >= 1"
        )
    for key in ("max_steps", "min_steps"):
        steps = trainer.get(key)
        if steps is not None and (not _is_int(steps) or steps < -1):
            raise ConfigError(f"trainer.{key}={steps!r}: must be an integer >= 0, or -1")


def hints_of(target: object) -> dict[str, object] | None:
    """Parameter name -> type hint for a config node's target; None if it takes any keyword."""
    if dataclasses.is_dataclass(target):
        return typing.get_type_hints(target)
    init = target.__init__ if isinstance(target, type) else target
    params = inspect.signature(init).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):  # forwarded to the base class, or any
        base = target.__mro__[1] if isinstance(target, type) else object
        if base is object:
            return None
        hints = hints_of(base)
        return None if hints is None else {**hints, **own_hints(init, params)}
    return own_hints(init, params)


def own_hints(init: object, params: typing.Iterable[inspect.Parameter]) -> dict[str, object]:
    """The named parameters of ``init`` and their type hints."""
    try:
        hints = typing.get_type_hints(init)
    except (NameError, TypeError):  # annotations that do not resolve: names still count
        hints = {}
    named = (p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    return {p.name: hints.get(p.name, object) for p in named if p.name != "self"}


def check_types(node: Mapping, prefix: str, hints: dict[str, object] | None) -> None:
    """Every key of ``node`` must be a known parameter and its value of the annotated type."""
    for key, value in node.items():
        if key.startswith("_") or hints is None:
            continue
        if key not in hints:
            raise ConfigError(f"{prefix}.{key}: unknown key (known: {', '.join(sorted(hints))})")
        if isinstance(value, Mapping) and "_target_" in value:  # a node of its own (data.augment)
            check_types(value, f"{prefix}.{key}", hints_of(target_of(value, f"{prefix}.{key}")))
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


def target_of(node: Mapping, key: str) -> Any:
    """The class (or function) a config node's ``_target_`` names, imported; ConfigError naming
    ``<key>._target_`` and what is missing: the module not found (``mynets``, not the whole
    path ``mynets.LeNet5``), or the name the module lacks (a typo)."""
    target = node.get("_target_")  # None where it is ??? (model=custom)
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{key}._target_ is required: {key}._target_=<module>.<Class>")
    parts, missing = target.split("."), target.split(".")[0]
    for split in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        name = ".".join(parts[:split])
        try:
            found = importlib.import_module(name)
            break
        except ModuleNotFoundError as e:
            if e.name is None or not (name == e.name or name.startswith(f"{e.name}.")):
                raise ConfigError(f"{key}._target_={target}: importing {name} failed: "
                                  f"{one_line(e)}") from None  # fmt: skip
            missing = e.name  # this prefix is no module: a shorter one may be
        except Exception as e:  # the user's module itself fails: SyntaxError, NameError...
            raise ConfigError(f"{key}._target_={target}: importing {name} failed: "
                              f"{type(e).__name__}: {one_line(e)}") from None  # fmt: skip
    else:
        raise ConfigError(f"{key}._target_={target}: no module named {missing} (the folder "
                          "holding it goes on PYTHONPATH; or a typo?)")  # fmt: skip
    for depth in range(split, len(parts)):
        if not hasattr(found, parts[depth]):
            where = ".".join(parts[:depth])
            raise ConfigError(f"{key}._target_={target}: {where} has no {parts[depth]} (a typo?)")
        found = getattr(found, parts[depth])
    return found
