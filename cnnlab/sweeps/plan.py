"""A sweep is planned and checked whole before its first trial trains.

Hydra's basic sweeper composed every trial silently (a 10x10x10 grid: minutes without a word),
then launched them, so a bad value failed its trial only when it was reached, after the good
ones had trained. Here a grid's trials are listed first (duplicate values are one trial), its
size is printed at once, a grid above ``hydra.sweeper.max_trials`` is refused, and every
trial's config is composed and checked (``check_trial``) before anything is written: a bad
value costs one line and exit 2, and no sweep directory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig

from cnnlab.errors import one_line
from cnnlab.runs.checks import ConfigError, check_config
from cnnlab.runs.network import check_network
from cnnlab.runs.training import resolve_trainer_precision

Compose = Callable[[list[str]], DictConfig]  # a trial's overrides -> its composed config


def grid(params: dict[str, str], arguments: list[str]) -> list[list[str]]:
    """Every trial of a grid, as its overrides: the product of each knob's values (the
    config's ``params``, then the command line; later wins), each value once."""
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    last = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(lines)}
    axes = []
    for override in last.values():
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(f"{override.input_line}: a grid takes lists, choice() and "
                                  "range(); interval() is for hparams_search=optuna")  # fmt: skip
            values = dict.fromkeys(override.sweep_string_iterator())  # 8,8 is one trial
        else:
            values = {override.get_value_element_as_str(): None}
        axes.append([f"{key}={value}" for value in values])
    return [list(trial) for trial in itertools.product(*axes)]


def check_size(trials: int, max_trials: int, setting: str) -> None:
    """Refuse a sweep above ``max_trials`` at once, before its trials are composed (a 1000-trial
    grid would take minutes); a sweep within it is checked in seconds."""
    if trials > max_trials:
        raise ConfigError(
            f"the sweep has {trials} trials, more than {setting}={max_trials}; "
            f"{setting}={trials} allows it"
        )


def say_size(what: str) -> None:
    """The sweep's size, once every trial is checked: a refusal is the only line before it."""
    print(f"Sweep: {what}, each checked before any trains", flush=True)


def check_trials(trials: list[list[str]], compose: Compose, sweep: DictConfig) -> list[DictConfig]:
    """Compose and check every trial (``check_trial``) of ``sweep`` (its config); their
    configs. The first bad one is refused in one line that names it by what sets it apart
    from the others. Each is checked as its job will run, under its own ``${hydra:...}``
    values (a launcher's ``n_jobs`` sets the threads); the sweep's are set back after."""
    shared = set.intersection(*map(set, trials)) if len(trials) > 1 else set()
    configs = []
    for overrides in trials:
        try:
            cfg = compose(overrides)
            HydraConfig.instance().set_config(cfg)
            check_trial(cfg)
        except Exception as e:  # a user's network may raise anything when built
            own = " ".join(o for o in overrides if o not in shared) or "every trial"
            raise ConfigError(f"{one_line(e)} (the sweep's trial {own}; none ran)") from None
        finally:
            HydraConfig.instance().set_config(sweep)
        configs.append(cfg)
    return configs


def check_trial(cfg: DictConfig) -> None:
    """One trial's composed config, checked as its run will check it at start-up (types,
    values, the data's own range checks, then the network built and run on two blank images
    against the data's shape and classes: ``check_network``), without loading data."""
    resolve_trainer_precision(cfg)
    check_config(cfg)
    instantiate(cfg.data)  # its own range checks; loads nothing
    check_network(cfg)
