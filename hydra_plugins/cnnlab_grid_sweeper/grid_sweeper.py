"""A Hydra sweeper for grids (``-m model.filters=16,32 seed=1,2``, ``sweep=arch``), cnnlab's
default: Hydra's basic sweeper, planned and checked whole before the first trial trains.

Hydra's own composes every trial silently (a 1000-trial grid sat for minutes without a word)
and then launches them all, so a bad value failed its trial only when reached. This one lists
the grid's trials (a value given twice is one trial), says how many at once, refuses a grid
above ``max_trials``, composes and checks every trial (``cnnlab.sweeps.plan``), and only then
claims the sweep directory (``cnnlab.sweeps.summary.start_sweep``) and launches them, in
batches of ``max_batch_size`` (null: all at once) through whatever launcher is configured.

Under ``resume=<sweep dir>``, a trial that already finished with the same overrides is not
launched again (launching it would rewrite its ``.hydra/`` files): it is reported as skipped.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from cnnlab.runs.resume import finished_trial
from cnnlab.runs.swept import MULTIRUN_FILE
from cnnlab.runs.training import report
from cnnlab.sweeps.plan import check_size, check_trials, grid, say_size
from cnnlab.sweeps.summary import check_resume, start_sweep
from cnnlab.sweeps.sweeper import LaunchingSweeper


class GridSweeper(LaunchingSweeper):
    def __init__(
        self, max_trials: int, max_batch_size: int | None, params: DictConfig | None
    ) -> None:
        self.max_trials, self.max_batch_size = max_trials, max_batch_size
        self.params = OmegaConf.to_container(params, resolve=True) if params else {}

    def sweep(self, arguments: list[str]) -> list:
        trials = grid(self.params, arguments)
        check_resume(self.config)
        check_size(len(trials), self.max_trials, "hydra.sweeper.max_trials")
        configs = check_trials(trials, self.compose, self.config)
        start_sweep(self.config)
        say_size(f"{len(trials)} trial{'s' * (len(trials) != 1)}")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        left = [num for num, cfg in enumerate(configs) if not self.skipped(num, cfg)]
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / MULTIRUN_FILE)
        returns = []
        for batch in self.batches(left):
            results = self.launcher.launch([trials[n] for n in batch], initial_job_idx=batch[0])
            for result in results:
                _ = result.return_value  # raises what a trial raised, as Hydra's sweeper does
            returns.append(results)
        return returns

    def compose(self, overrides: list[str]) -> DictConfig:
        """A trial's config, composed as the launcher will compose it."""
        return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)

    def skipped(self, num: int, cfg: DictConfig) -> bool:
        """Under ``resume=``: whether trial ``num`` already finished (reported, not launched)."""
        if not self.config.get("resume"):
            return False
        with read_write(cfg.hydra), open_dict(cfg.hydra):  # checked: made read-only
            cfg.hydra.job.num = num  # its directory's name begins with it
        record = finished_trial(cfg)
        if record is not None:
            report({**record, "skipped": True})
        return record is not None

    def batches(self, nums: list[int]) -> list[list[int]]:
        """Runs of consecutive trial numbers (a launch numbers its jobs from its first), at
        most ``max_batch_size`` long."""
        runs = [[n for _, n in run] for _, run in groupby(enumerate(nums), lambda p: p[1] - p[0])]
        size = self.max_batch_size or max(len(nums), 1)
        return [run[i : i + size] for run in runs for i in range(0, len(run), size)]
