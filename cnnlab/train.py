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
from cnnlab.runs.resume import check_sweep_resume, expand_resume, override_key
from cnnlab.runs.run_dir import RunDirLock, claim_run_dir
from cnnlab.runs.training import check_resumed_run, report, run, train
from cnnlab.signals import SweepInterrupted
from cnnlab.sweeps.ddp import drop_own_log_file, is_rank_zero, sweep_trial_ddp
from cnnlab.sweeps.summary import end_interrupted, end_of_trial


def prepare(argv: list[str]) -> RunDirLock | None:
    """Before Hydra reads ``argv``: ``resume=<run dir>`` becomes the overrides that continue
    that run, checked first (a refused resume leaves the run as it was); a run directory named
    on the command line is claimed for this run alone (the lock is returned, to be held)."""
    check_sweep_resume(argv[1:])
    expanded = expand_resume(argv[1:])
    resuming = expanded != argv[1:]
    lock, run_dir = None, named_run_dir(expanded)
    # DDP ranks > 0 are re-runs of rank 0's command in rank 0's directory, which it holds
    if is_rank_zero() and run_dir:
        lock = claim_run_dir(run_dir, resuming)
    if resuming and run_dir:
        check_resumed_run(expanded, run_dir)
    argv[1:] = expanded
    return lock


def named_run_dir(overrides: list[str]) -> Path | None:
    """The ``hydra.run.dir`` a single run's command line sets (default ones are unique)."""
    if {"-m", "--multirun"} & set(overrides):
        return None
    named = [o.split("=", 1)[1] for o in overrides if override_key(o) == "hydra.run.dir"]
    return Path(named[-1].strip("'\"")).expanduser().resolve() if named else None


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
