"""Optuna pruning from inside a trial: report val/acc every epoch, stop when the pruner says so.

Each trial runs in a process of its own (Hydra's basic, joblib or submitit launcher), so the
trial cannot be handed Optuna's in-process ``Trial``: it finds its trial in the study's storage
(SQLite in the sweep directory by default) by the sweeper's trial number, which is Hydra's job
number, and talks to it through Optuna's public storage API. A pruned trial stops after the
epoch it was judged on, as ``EarlyStopping`` stops a run: its checkpoints, curves and test are
kept, ``result.json`` says "pruned", and the sweeper tells Optuna so (not failed: exit 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

if TYPE_CHECKING:
    from optuna.pruners import BasePruner

OPTUNA_DB = "optuna.db"


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The study's storage: ``hydra.sweeper.storage``, or SQLite in the sweep directory (an
    absolute path: SLURM jobs need not start where the sweep did)."""
    return storage or f"sqlite:///{Path(sweep_dir).resolve() / OPTUNA_DB}"


class OptunaPruning(L.Callback):
    """Reports ``monitor`` after every validation as the trial's intermediate value at step
    <epochs done>; when ``pruner`` (None: report only) prunes the trial, the run stops there."""

    def __init__(
        self,
        study_name: str,
        trial: int,
        sweep_dir: str,
        storage: str | None = None,
        pruner: BasePruner | None = None,
        monitor: str = "val/acc",
    ) -> None:
        self.study_name, self.trial_number = study_name, trial
        self.storage_url = storage_url(storage, sweep_dir)
        self.pruner, self.monitor = pruner, monitor
        self.pruned_after: int | None = None  # epochs done when the pruner stopped the run

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import optuna  # only Optuna searches need it

        self.storage = optuna.storages.get_storage(self.storage_url)
        self.study = optuna.load_study(
            study_name=self.study_name, storage=self.storage, pruner=self.pruner
        )
        study_id = self.storage.get_study_id_from_name(self.study_name)
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(
            study_id, self.trial_number
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        prune = False
        if trainer.is_global_zero:  # every rank validates on everything; one reports
            epochs = trainer.current_epoch + 1
            value = float(trainer.callback_metrics[self.monitor])
            self.storage.set_trial_intermediate_value(self.trial_id, epochs, value)
            if self.pruner is not None:
                prune = self.pruner.prune(self.study, self.storage.get_trial(self.trial_id))
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned_after = trainer.current_epoch + 1
            trainer.should_stop = True
