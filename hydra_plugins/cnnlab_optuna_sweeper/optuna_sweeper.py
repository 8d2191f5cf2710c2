"""A Hydra sweeper that lets Optuna (TPE) choose each trial's overrides.

Why our own: hydra-optuna-sweeper 1.2/1.3.0.dev0 require optuna < 3 (and old SQLAlchemy for
SQLite storage); its 1.4 candidates need hydra-core 1.4. This sweeper is the part of it cnnlab
needs, on current Optuna: the search space in Hydra's override grammar (``choice(...)``,
``range(...)``, ``interval(...)``, ``tag(log, interval(...))``, or ``a,b,c``), trials launched
in batches through whatever Hydra launcher is configured (basic, joblib, submitit), each
trial's return value (validation accuracy; None for a failed trial) told back to the study.
The study lives in SQLite in the sweep directory, so ``resume=<sweep dir>`` continues it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

log = logging.getLogger(__name__)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution for one sweep override of Hydra's grammar."""
    sweep = override.value()
    log_scale = "log" in sweep.tags
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log_scale)
        return FloatDistribution(sweep.start, sweep.end, log=log_scale)
    if isinstance(sweep, RangeSweep) and all(isinstance(v, int) for v in sweep.range()):
        values = list(sweep.range())
        return IntDistribution(values[0], values[-1], step=sweep.step or 1)
    if isinstance(sweep, (ChoiceSweep, RangeSweep)):
        return CategoricalDistribution(list(override.sweep_iterator()))
    raise ValueError(f"{override.input_line}: not a search space Optuna can sample")


def search_space(params: dict[str, str], arguments: list[str]) -> tuple[dict, list[str]]:
    """The space (config ``params`` + sweep overrides) and the fixed overrides of every trial.

    Later wins: ``trainer.max_epochs=1`` on the command line takes that knob out of the space.
    """
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(lines):
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            space.pop(override.get_key_element(), None)
            fixed.append(override.input_line)
    return space, fixed


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        n_trials: int,
        n_jobs: int,
        direction: str,
        study_name: str,
        storage: str | None,
        seed: int | None,
        params: DictConfig | None,
    ) -> None:
        self.n_trials, self.n_jobs, self.direction = n_trials, n_jobs, direction
        self.study_name, self.storage, self.seed = study_name, storage, seed
        self.params = OmegaConf.to_container(params, resolve=True) if params else {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        space, fixed = search_space(self.params, arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = self.load_study(sweep_dir)
        while (left := self.n_trials - len(study.trials)) > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, left))]
            batch = [fixed + [f"{k}={v}" for k, v in t.params.items()] for t in trials]
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, job in zip(trials, returns, strict=True):
                value = outcome(job)
                study.tell(trial, value, state=TrialState.FAIL if value is None else None)
        if any(t.state == TrialState.COMPLETE for t in study.trials):
            log.info("Best trial #%d: %s = %s", study.best_trial.number, study.best_params,
                     study.best_value)  # fmt: skip

    def load_study(self, sweep_dir: Path) -> optuna.Study:
        """Create the study, or load it to go on; trials left running by a crash count failed."""
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage or f"sqlite:///{sweep_dir / 'optuna.db'}",
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            direction=self.direction,
            load_if_exists=True,
        )
        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(stale.number, state=TrialState.FAIL)
        return study


def outcome(job: JobReturn) -> float | None:
    """The trial's objective value; None when it failed (a failed trial returns None)."""
    if job.status != JobStatus.COMPLETED:
        return None
    value = job.return_value
    return None if value is None else float(value)
