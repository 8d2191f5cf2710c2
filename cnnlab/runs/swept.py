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
from omegaconf import OmegaConf

MULTIRUN_FILE = "multirun.yaml"


def swept_keys(sweep_dir: Path) -> list[str] | None:
    """The keys the sweep varies, sorted; None where ``sweep_dir`` holds no sweep definition."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    if not path.is_file():
        return None
    hydra = OmegaConf.load(path).hydra
    params = hydra.sweeper.get("params") or {}
    args = [f"{key}={value}" for key, value in params.items()] + list(hydra.overrides.task)
    last = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(args)}
    return sorted(key for key, override in last.items() if _varies(override))


def _varies(override: Override) -> bool:
    value = override.value()
    if isinstance(value, IntervalSweep):
        return True
    if isinstance(value, ChoiceSweep | RangeSweep):
        return len(list(override.sweep_string_iterator())) > 1
    return False


def trial_name(sweep_dir: str, task_overrides: list[str], override_dirname: str) -> str:
    """A trial's overrides of the swept knobs, ``key=value`` joined by commas in key order
    (as Hydra's ``override_dirname``); all of ``override_dirname`` where the sweep's definition
    is not known or varies nothing."""
    keys = swept_keys(Path(sweep_dir))
    if not keys:
        return override_dirname
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    mine = {o.key_or_group: o.input_line for o in parsed if o.key_or_group in keys}
    return ",".join(mine[key].lstrip("+~") for key in sorted(mine)) or override_dirname
