"""What happens between Hydra composing a single run's config and Hydra writing its directory.

Hydra writes ``<run dir>/.hydra/`` (the config, the overrides) first thing when it runs a job,
so whatever must be refused while a run directory is as it was is refused here, in a Hydra
callback's ``on_run_start`` (``conf/hydra/default.yaml``), which Hydra calls with the config it
composed for the run and before it writes anything: a ``resume=`` of a sweep without ``-m``;
a named ``hydra.run.dir`` that another run uses or that already holds a run
(``cnnlab.runs.run_dir``); and a resume that would not go on (a bad override, a checkpoint that
does not fit, fewer epochs than the run trained, a disk without room). A resumed run is pointed
at its newest checkpoint here too (``cnnlab.runs.resume.continue_in_place``), in every DDP rank:
Lightning starts ranks > 0 by re-running the command, which never reaches ``training.run``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, open_dict

from cnnlab.runs.checkpoints import read_checkpoint, resume_point
from cnnlab.runs.checks import ConfigError, check_config
from cnnlab.runs.cli import BeforeStart
from cnnlab.runs.preflight import check_room
from cnnlab.runs.resume import ResumeError, continue_in_place, parsed
from cnnlab.runs.run_dir import RunDirLock, claim_run_dir
from cnnlab.runs.swept import MULTIRUN_FILE
from cnnlab.runs.training import build_classifier, resolve_trainer_precision


class RunStart(Callback):
    """Claims, checks and (under ``resume=``) points a single run at its checkpoint before
    Hydra writes its directory; the claim (a lock) is held while the run lasts."""

    def __init__(self) -> None:
        self.lock: RunDirLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.lock = start_run(config)
        except Exception as e:  # Hydra would only warn of it, and run on: BeforeStart stops it
            raise BeforeStart(e) from e


def start_run(config: DictConfig) -> RunDirLock | None:
    """The checks and the claim (its lock, or None) of a single run, ``config`` as Hydra
    composed it (``hydra`` included), pointed at its checkpoint when it is a resume."""
    resume, run_dir = config.get("resume"), Path(config.hydra.run.dir).resolve()
    if rank_zero_only.rank != 0:  # rank 0's command again, in rank 0's directory: it checked
        if resume:
            continue_in_place(config, run_dir)
        return None
    if resume and (sweep := Path(str(resume)).resolve() / MULTIRUN_FILE).is_file():
        raise ResumeError(f"resume={sweep.parent}: a sweep; add -m (and the sweep's own overrides)")
    named = any(
        o.key_or_group == "hydra.run.dir" for o in parsed(list(config.hydra.overrides.hydra))
    )
    lock = claim_run_dir(run_dir, bool(resume)) if resume or named else None
    if resume:
        continue_in_place(config, run_dir)
        check_resumed_run(config, run_dir)
    return lock


def check_resumed_run(composed: DictConfig, run_dir: Path) -> None:
    """Check a resumed run's config, that the run's checkpoint fits its model, that it asks for
    more than the run already did, and that the disk has room: ``training.build``'s checks,
    which the run makes again, made while its directory is still as it was."""
    cfg = copy.deepcopy(composed)  # the checks resolve trainer.precision in what they check
    with open_dict(cfg):
        del cfg["hydra"]  # the run's own config, as the run gets it
    resolve_trainer_precision(cfg)
    check_config(cfg)
    instantiate(cfg.data)  # its own range checks
    model = build_classifier(cfg, instantiate(cfg.speed))
    if cfg.ckpt_path is not None:
        ckpt = resume_point(model, cfg.ckpt_path)
        check_goes_further(cfg.trainer, read_checkpoint(Path(ckpt)), run_dir)
    check_room(run_dir, model, resuming=cfg.ckpt_path is not None)


def check_goes_further(trainer: DictConfig, ckpt: dict[str, Any], run_dir: Path) -> None:
    """A resume that asks for fewer epochs (or steps) than the run already trained would end
    at once and rewrite the run's config as if it had trained that little: refused."""
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    epochs = progress.get("current", {}).get("processed")
    steps, asked = ckpt.get("global_step", 0), trainer.get("max_steps", -1)
    if isinstance(epochs, int) and trainer.max_epochs < epochs:
        raise ConfigError(
            f"resume={run_dir}: the run already trained {epochs} epochs; "
            f"trainer.max_epochs={trainer.max_epochs} asks for fewer (ask for more to go on)"
        )
    if asked is not None and 0 <= asked < steps:
        raise ConfigError(
            f"resume={run_dir}: the run already took {steps} optimizer steps; "
            f"trainer.max_steps={asked} asks for fewer (ask for more to go on)"
        )
