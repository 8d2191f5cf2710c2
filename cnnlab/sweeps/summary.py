"""A Hydra callback that ends every sweep with its leaderboard and an honest exit status.

Trials never end the sweep themselves (a failed trial records its error and returns), so the
sweep goes on; once all trials are done, whatever the launcher, this callback writes and prints
the leaderboard and exits 1 if any trial did not finish. At the start, a SLURM sweep is checked
with SLURM (``cnnlab.sweeps.slurm``) before anything is submitted. Hydra catches ``Exception`` from
callbacks (and only warns), so errors here leave through ``SystemExit``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.errors import fail
from cnnlab.runs.checks import ConfigError
from cnnlab.sweeps.leaderboard import summarize
from cnnlab.sweeps.slurm import check_submission, is_slurm


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        resume = config.get("resume")
        if resume and not Path(resume).is_dir():
            fail(ConfigError(f"resume={resume}: no such sweep directory"))
        if is_slurm(config.hydra.launcher):
            try:  # before the launcher makes the sweep directory or submits anything
                check_submission(config.hydra.launcher)
            except ConfigError as e:
                fail(e)
        print(f"Sweep directory: {config.hydra.sweep.dir}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        status = summarize(Path(config.hydra.sweep.dir))
        if status:
            sys.exit(status)
