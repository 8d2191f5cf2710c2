"""``python -m cnnlab.train [overrides]``: train, test the best checkpoint, write result.json.

Hydra composes ``conf/train.yaml``; every run gets its own directory under ``outputs/`` with
the resolved config, the log, checkpoints, TensorBoard events and ``result.json``. The run
itself is ``cnnlab.runs.training``; this module is the command around it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig

import cnnlab.runs.resolvers  # noqa: F401  (registers ${cnnlab.root:})
from cnnlab.runs.cli import run_cli
from cnnlab.runs.resume import apply_resume
from cnnlab.runs.training import report, run, train
from cnnlab.sweeps.ddp import drop_own_log_file, is_rank_zero, sweep_trial_ddp


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
    report(record)
    if record["status"] != "finished":
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return None  # the sweep goes on; its leaderboard reports the failure and exits 1
        sys.exit(record["exit_code"])
    return record["val/acc"]


if __name__ == "__main__":
    apply_resume(sys.argv)
    run_cli(main)
