"""Which knobs a sweep varies, read from its definition (``<sweep dir>/multirun.yaml``, written
by Hydra's launchers before the first trial): what trial directories (and so TensorBoard's run
names) show, and what HPARAMS lists first.

A knob varies when its last definition is a sweep of more than one value: a command-line sweep
(``model.filters=16,32``, ``range(1,4)``), or a ``hydra.sweeper.params`` entry (a preset's grid,
an Optuna search space: ``interval(...)``, ``choice(...)``) that the command line did not fix.
The same command gives the same names again, so ``resume=<sweep dir>`` finds every trial.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from omegaconf import DictConfig, OmegaConf

from cnnlab.runs.checks import ConfigError

MULTIRUN_FILE = "multirun.yaml"


def swept_keys(sweep_dir: Path) -> list[str] | None:
    """The keys the sweep varies, sorted; None where ``sweep_dir`` holds no sweep definition."""
    swept = swept_overrides(sweep_dir)
    return None if swept is None else sorted(swept)


def swept_overrides(sweep_dir: Path) -> dict[str, Override] | None:
    """The sweep's last definition of each knob it varies, by key (None: no definition)."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    return swept_in(OmegaConf.load(path).hydra) if path.is_file() else None


def swept_in(hydra: DictConfig) -> dict[str, Override]:
    """A sweep's last definition of each knob it varies, from its ``hydra`` config node."""
    params = hydra.sweeper.get("params") or {}
    args = [f"{key}={value}" for key, value in params.items()] + list(hydra.overrides.task)
    last = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(args)}
    return {key: override for key, override in last.items() if _varies(override)}


def check_same_sweep(config: DictConfig) -> None:
    """``resume=<sweep dir>`` finishes that sweep: a command that varies other knobs, or the
    same knobs over other values, would mix two sweeps in one leaderboard (two "trial 2"s)."""
    resume = config.get("resume")
    if not resume or (saved := swept_overrides(Path(resume))) is None:
        return
    own, asked = values_of(saved), values_of(swept_in(config.hydra))
    if own != asked:
        differ = sorted(key for key in own.keys() | asked.keys() if own.get(key) != asked.get(key))
        raise ConfigError(
            f"resume={resume}: that sweep varies {_listed(own, differ)}, this command "
            f"{_listed(asked, differ)}; "
            "resume it with its own values (its resume command), or start a new sweep"
        )


def values_of(swept: dict[str, Override]) -> dict[str, str]:
    """Each swept knob's values as text, each value once: what makes a sweep that sweep."""
    return {
        key: ",".join(dict.fromkeys(o.sweep_string_iterator()))
        if o.is_discrete_sweep()
        else o.input_line.split("=", 1)[1]  # interval(...), as written
        for key, o in swept.items()
    }


def _listed(values: dict[str, str], keys: list[str]) -> str:
    return " ".join(f"{key}={values[key]}" for key in keys if key in values) or "nothing"


def _varies(override: Override) -> bool:
    value = override.value()
    if isinstance(value, IntervalSweep):
        return True
    if isinstance(value, ChoiceSweep | RangeSweep):
        return len(set(override.sweep_string_iterator())) > 1  # 8,8 is one value
    return False


def trial_name(sweep_dir: str, task_overrides: list[str], override_dirname: str) -> str:
    """A trial's overrides of the swept knobs, ``key=value`` joined by commas in key order
    (as Hydra's ``override_dirname``); all of ``override_dirname`` where the sweep's definition
    is not known or varies nothing. A value Optuna drew from an ``interval(...)`` is shown to
    4 significant digits (``result.json`` and ``config.yaml`` keep it exact)."""
    swept = swept_overrides(Path(sweep_dir))
    if not swept:
        return override_dirname
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    mine = {o.key_or_group: o for o in parsed if o.key_or_group in swept}
    shown = [
        _shown(mine[key], isinstance(swept[key].value(), IntervalSweep)) for key in sorted(mine)
    ]
    return ",".join(shown) or override_dirname


def _shown(override: Override, drawn: bool) -> str:
    value = override.value()
    if drawn and isinstance(value, float):
        return f"{override.key_or_group}={value:.4g}"
    return override.input_line.lstrip("+~")
