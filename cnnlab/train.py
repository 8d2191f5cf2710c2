"""``python -m cnnlab.train [overrides]``: train, test the best checkpoint, write result.json.

Hydra composes ``conf/train.yaml``; every run gets its own directory under ``outputs/`` with
the resolved config, the log, checkpoints, TensorBoard events and ``result.json``. The run
itself is ``cnnlab.runs.training``; this module is the command around it.
"""

from __future__ import annotations

from cnnlab.signals import exit_on_signals

if __name__ == "__main__":
    exit_on_signals()  # first: a Ctrl-C while the imports below load is one line, no traceback

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

import cnnlab.runs.resolvers  # registers ${cnnlab.root:} and the other resolvers
import cnnlab.sweeps.slurm  # noqa: F401  (registers ${cnnlab.slurm.*:})
from cnnlab.runs.cli import run_cli
from cnnlab.runs.results import DONE
from cnnlab.runs.resume import resumed_argv
from cnnlab.runs.training import report, run, train
from cnnlab.signals import SweepInterrupted
from cnnlab.sweeps.ddp import drop_own_log_file, is_rank_zero, sweep_trial_ddp
from cnnlab.sweeps.summary import end_interrupted, end_of_trial


def prepare(argv: list[str]) -> None:
    """Before Hydra reads ``argv``: ``resume=<run dir>`` gets that run's own overrides in front
    of the command's (``cnnlab.runs.resume``; the run is checked and claimed as Hydra starts
    it, ``cnnlab.runs.run_start``)."""
    argv[1:] = resumed_argv(argv[1:])


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns val accuracy so Hydra sweepers can optimise it."""
    if not is_rank_zero():  # a DDP rank > 0: trains alongside rank 0, which writes everything
        drop_own_log_file()
        instantiate(cfg.speed).tune_process()
        train(cfg)
        return None
    with sweep_trial_ddp(Path(cfg.paths.run_dir)):
        record = run(cfg)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return end_of_trial(record)
    report(record)
    if record["status"] not in DONE:
        sys.exit(record["exit_code"])
    return record["val/acc"]


if __name__ == "__main__":
    logging.raiseExceptions = False  # train.log on a full disk: no traceback, the run's own line
    # Lightning's SIGTERM handler logs "Received SIGTERM" before the run's own line says it all
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").setLevel("WARNING")
    try:
        run_cli(main, prepare=prepare)
    except SweepInterrupted as stop:
        end_interrupted(stop)
