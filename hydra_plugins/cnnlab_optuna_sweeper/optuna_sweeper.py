"""A Hydra sweeper that lets Optuna (TPE) choose each trial's overrides.

Why our own: hydra-optuna-sweeper 1.2/1.3.0.dev0 require optuna < 3 (and old SQLAlchemy for
SQLite storage); its 1.4 candidates need hydra-core 1.4. This sweeper is the part of it cnnlab
needs, on current Optuna: the search space in Hydra's override grammar (``choice(...)``,
``range(...)``, ``interval(...)``, ``tag(log, interval(...))``, or ``a,b,c``), trials launched
through whatever Hydra launcher is configured (basic, joblib, submitit), each
trial's return value (validation accuracy; None for a failed trial) told back to the study,
and a trial that its pruner stopped (cnnlab.callbacks.pruning: ``result.json`` says "pruned")
told as pruned. With ``n_jobs`` > 1 (a launcher that runs trials in processes of their own:
joblib, submitit), each trial is launched alone from one of ``n_jobs`` threads, and a new one
is asked for as soon as any ends: a pruned trial frees its slot at once, where launching
batches would wait for the batch's slowest. The study lives in SQLite in the sweep directory,
so ``resume=<sweep dir>`` continues it.

A trial that a signal interrupted is not a failure: it is told nothing and stays RUNNING in
the study, and no further trial is asked for (``cnnlab.sweeps.summary``). ``resume=<sweep dir>``
launches every RUNNING trial again first, with its parameters and its number (so its own
directory, where it continues from its checkpoint), then asks for new ones up to ``n_trials``,
from a sampler seeded by ``seed`` + the trials the study holds (new points, not the first ones
again). Before any trial trains, each knob's range is checked at its ends (``bounds``).
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from cnnlab.callbacks.pruning import storage_url
from cnnlab.runs.results import read_result
from cnnlab.runs.swept import MULTIRUN_FILE
from cnnlab.signals import stopping
from cnnlab.sweeps.plan import check_trials, say_size
from cnnlab.sweeps.summary import check_resume, in_process, start_sweep
from cnnlab.sweeps.sweeper import LaunchingSweeper

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

    Later wins: ``trainer.max_epochs=1`` on the command line takes that knob out of the space,
    and ``trainer.max_epochs=choice(1,4)`` after it puts it back.
    """
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    last = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(lines)}
    space = {o.get_key_element(): distribution(o) for o in last.values() if o.is_sweep_override()}
    fixed = [o.input_line for o in last.values() if not o.is_sweep_override()]
    return space, fixed


def bounds(space: dict[str, BaseDistribution], fixed: list[str]) -> list[list[str]]:
    """Trials that take each knob to each end of its range (each choice of a categorical one),
    the other knobs at their lower ends: checked before the search starts, so a range that
    holds bad values (negative dropouts) is refused before any trial trains."""
    ends = {key: _ends(dist) for key, dist in space.items()}
    low = {key: values[0] for key, values in ends.items()}
    points = [{**low, key: value} for key, values in ends.items() for value in values]
    unique = {tuple(f"{k}={v}" for k, v in point.items()): None for point in points}
    return [fixed + list(point) for point in unique] or [fixed]


def _ends(dist: BaseDistribution) -> list:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    return [dist.low, dist.high]


class OptunaSweeper(LaunchingSweeper):
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

    def sweep(self, arguments: list[str]) -> None:
        space, fixed = search_space(self.params, arguments)
        check_resume(self.config)
        compose = self.hydra_context.config_loader.load_sweep_config
        check_trials(
            bounds(space, fixed), lambda overrides: compose(self.config, overrides), self.config
        )
        start_sweep(self.config)
        say_size(f"an Optuna search of {self.n_trials} trials")
        self.sweep_dir = Path(self.config.hydra.sweep.dir)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / MULTIRUN_FILE)
        study = self.load_study(self.sweep_dir)
        # Hydra's basic launcher runs a trial in this process: one at a time, in the main
        # thread (where cnnlab's trials install their signal handlers)
        slots = 1 if in_process(self.config.hydra.launcher) else self.n_jobs
        if slots == 1:
            while (trial := self.next_trial(study, space)) is not None:
                if not tell(study, trial, self.launch(trial, fixed)):
                    break  # interrupted: the sweep stops
        else:
            self.launch_in_slots(study, space, fixed, slots)
        if any(t.state == TrialState.COMPLETE for t in study.trials):
            log.info("Best trial #%d: %s = %s", study.best_trial.number, study.best_params,
                     study.best_value)  # fmt: skip

    def next_trial(self, study: optuna.Study, space: dict) -> Trial | FrozenTrial | None:
        """A trial left RUNNING (interrupted, or its sweep killed) to launch again first, then
        a new one; None when the study holds ``n_trials`` or the sweep is stopping."""
        if stopping(self.sweep_dir) is not None:
            return None
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        left = [t for t in running if t.number not in self.launched]  # by an earlier sweep
        if not left and len(study.trials) >= self.n_trials:
            return None
        trial = left[0] if left else study.ask(space)
        self.launched.add(trial.number)
        return trial

    def launch(self, trial: Trial | FrozenTrial, fixed: list[str]) -> JobReturn:
        """Run one trial through the launcher, as job number ``trial.number``."""
        overrides = fixed + [f"{k}={v}" for k, v in trial.params.items()]
        (job,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
        return job

    def launch_in_slots(
        self, study: optuna.Study, space: dict, fixed: list[str], slots: int
    ) -> None:
        """``slots`` trials at a time, each launched from a thread of its own; the next trial
        is asked for as soon as one ends (the study is only touched from this thread)."""
        with ThreadPoolExecutor(slots, thread_name_prefix="trial") as pool:
            running: dict[Future, Trial | FrozenTrial] = {}
            stop = False
            while True:
                while not stop and len(running) < slots:
                    if (trial := self.next_trial(study, space)) is None:
                        break
                    running[pool.submit(self.launch, trial, fixed)] = trial
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    stop |= not tell(study, running.pop(future), future.result())

    def load_study(self, sweep_dir: Path) -> optuna.Study:
        """Create the study, or load it to go on (its RUNNING trials are launched again).

        The sampler is seeded with ``seed`` + the trials the study already holds: a resumed
        search goes on from where it stood, where the seed alone would draw its first trials'
        points again (repeats that pass for reproducibility); the same command still proposes
        the same trials."""
        self.launched: set[int] = set()  # trial numbers this sweep launched
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage_url(self.storage, sweep_dir),
            direction=self.direction,
            load_if_exists=True,
        )
        held = len(study.trials)
        study.sampler = optuna.samplers.TPESampler(
            seed=None if self.seed is None else self.seed + held
        )
        return study


def tell(study: optuna.Study, trial: Trial | FrozenTrial, job: JobReturn) -> bool:
    """Tell the study how the trial ended: its value, pruned (the trial's own result.json says
    so; Optuna then takes its last reported value), or failed. An interrupted trial is told
    nothing (it stays RUNNING, for ``resume=``): False, the sweep stops."""
    record = read_result(Path(job.hydra_cfg.hydra.runtime.output_dir)) if job.hydra_cfg else None
    status = record.get("status") if record else None
    if status == "interrupted" and not record.get("requeued"):
        return False
    if status == "pruned" and job.status == JobStatus.COMPLETED:
        study.tell(trial.number, state=TrialState.PRUNED)
        return True
    value = outcome(job)
    study.tell(trial.number, value, state=TrialState.FAIL if value is None else None)
    return True


def outcome(job: JobReturn) -> float | None:
    """The trial's objective value; None when it failed (a failed trial returns None)."""
    if job.status != JobStatus.COMPLETED:
        return None
    value = job.return_value
    return None if value is None else float(value)
