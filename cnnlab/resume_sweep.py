"""Resuming a sweep: a trial that already finished in its directory is not trained again.

Hydra has no multirun resume. ``resume=<sweep dir>`` points the sweep at an existing directory
(the same command gives every trial the same ``<num>_<overrides>`` subdirectory); each trial
then looks at its own ``result.json``: finished with the same overrides means skip and report
the recorded result; anything else (failed, interrupted, never started) runs again, after the
earlier attempt's files are moved aside into ``attempt-<n>/`` so nothing is lost or mixed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cnnlab.config import ConfigError
from cnnlab.results import read_result

log = logging.getLogger(__name__)

ATTEMPT_FILES = ("result.json", "config.yaml", "checkpoints", "tensorboard")


def relevant_overrides(overrides: list[str]) -> list[str]:
    """Overrides that change what a trial computes (not where it writes, how many threads...)."""
    excluded = set(HydraConfig.get().job.config.override_dirname.exclude_keys)
    return sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in excluded)


def resume_trial(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Under ``resume=``: the recorded result if this trial already finished, else None
    (and the earlier attempt's files, if any, are set aside for the rerun)."""
    if not cfg.get("resume"):
        return None
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        raise ConfigError(f"resume={cfg.resume}: resumes a sweep; add -m (multirun)")
    record = read_result(run_dir)
    if record and record.get("status") == "finished" and _same_overrides(record):
        log.info("Resume: %s already finished (val/acc %s); skipped", run_dir, record["val/acc"])
        return record
    set_aside_earlier_attempt(run_dir)
    return None


def _same_overrides(record: dict[str, Any]) -> bool:
    now = list(HydraConfig.get().overrides.task)
    return relevant_overrides(record.get("overrides", [])) == relevant_overrides(now)


def set_aside_earlier_attempt(run_dir: Path) -> None:
    """Move a failed or interrupted attempt's files into ``attempt-<n>/`` before rerunning."""
    leftovers = [run_dir / name for name in ATTEMPT_FILES if (run_dir / name).exists()]
    if not leftovers:
        return
    attempt = run_dir / f"attempt-{len(list(run_dir.glob('attempt-*'))) + 1}"
    attempt.mkdir()
    for path in leftovers:
        path.rename(attempt / path.name)
    log.info("Resume: earlier attempt's files moved to %s", attempt)
