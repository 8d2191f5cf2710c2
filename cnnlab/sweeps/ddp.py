"""DDP under Hydra: one run directory, written by rank 0 alone, also inside a sweep.

Lightning starts DDP ranks > 0 (on one machine) by re-running this very command with
``hydra.run.dir=<rank 0's run dir>`` appended (``_SubprocessScriptLauncher``). Two things follow:
ranks > 0 must train without writing what rank 0 writes (result.json, config.yaml, a log of
their own, the report); and inside a sweep the re-run command would be the whole sweep, so for
the duration of a trial the command line is made that trial alone, as a single run in the
trial's directory. Under SLURM, SLURM starts every rank itself and nothing is re-run.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.rank_zero import rank_zero_only

RUN_DIR_ENV = "CNNLAB_RUN_DIR"  # conf/hydra/default.yaml: hydra.run.dir follows it when set
DDP_ENV = (RUN_DIR_ENV, "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def is_rank_zero() -> bool:
    """False in DDP ranks > 0 (Lightning reads RANK / LOCAL_RANK / SLURM_PROCID at import)."""
    return rank_zero_only.rank == 0


def drop_own_log_file() -> None:
    """Ranks > 0: no log of their own beside rank 0's train.log. Re-run by Lightning, a rank
    has its own ``train_ddp_process_<n>.log``, deleted; started by SLURM, every rank's Hydra
    opened the trial's one ``train.log``, which belongs to rank 0 and stays."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
        if not SLURMEnvironment.detect():
            Path(handler.baseFilename).unlink(missing_ok=True)


@contextmanager
def sweep_trial_ddp(run_dir: Path) -> Iterator[None]:
    """In a sweep, let DDP re-run this trial alone (in its directory), not the whole sweep.

    Trials run one after another in this process; Lightning leaves a DDP trial's process group
    and its environment (LOCAL_RANK, MASTER_PORT...) in place after the run, which would make
    the next trial wait for ranks that never come. Both are put back as they were.
    """
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    argv, env = sys.argv, {key: os.environ.get(key) for key in DDP_ENV}
    sys.argv = [argv[0], *HydraConfig.get().overrides.task, "hydra.mode=RUN"]
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        sys.argv = argv
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
