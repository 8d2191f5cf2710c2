"""Resuming: a stopped run continues where it was; a resumed sweep skips its finished trials.

``python -m cnnlab.train resume=<run_dir> [overrides]``: continue a stopped run where it was.

The run continues in the same directory with the same settings (its saved
``.hydra/overrides.yaml``, then any new overrides, e.g. ``trainer.max_epochs=10``), from its
newest checkpoint: ``checkpoints/last.ckpt`` (the end of the last finished epoch) or
``checkpoints/interrupted.ckpt`` (saved at a batch boundary when a signal stopped it), whichever
holds more steps. Both hold weights, optimizer state, loop counters, callback state, the RNG
state (``RngState``), the data order's position in the epoch (``TensorLoader.state_dict``) and
the epoch's running train sums, so the result equals an uninterrupted run. TensorBoard
continues in the same event directory; events logged after that checkpoint are purged so
curves have no duplicate steps.

``resume=<sweep dir> -m``: Hydra has no multirun resume. ``resume=<sweep dir>`` points the sweep
at an existing directory (the same command gives every trial the same ``<num>_<swept values>``
subdirectory); each trial then looks at its own ``result.json``: finished with the same
overrides means skip and report the recorded result; anything else (failed, interrupted, never
started) runs again. An interrupted trial (stopped by a signal, or killed: no result.json)
with a checkpoint continues from it in place, as a resumed run does; any other (failed, or
never got a checkpoint) starts over, after the earlier attempt's files are moved aside into
``attempt-<n>/`` so nothing is lost or mixed. A trial that SLURM requeued (preemption, time
limit, ``scontrol requeue``: ``SLURM_RESTART_COUNT`` > 0) is handled the same way, without
``resume=``.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnnlab.callbacks.signals import INTERRUPTED_CKPT
from cnnlab.errors import CnnlabError
from cnnlab.runs.checkpoints import read_checkpoint
from cnnlab.runs.checks import ConfigError
from cnnlab.runs.resolvers import PROJECT_ROOT
from cnnlab.runs.results import DONE, read_result
from cnnlab.runs.run_dir import began
from cnnlab.runs.swept import MULTIRUN_FILE

CHECKPOINTS = ("last.ckpt", INTERRUPTED_CKPT)  # where a stopped run can continue from
SWEEP_SETTINGS = ("hydra.sweeper", "hydra.launcher", "hydra.searchpath")  # kept by a resume
# Overrides that belong to one attempt, not to the run: recomputed on every resume.
PER_ATTEMPT_KEYS = ("ckpt_path", "logger.tensorboard.purge_step")


class ResumeError(CnnlabError):
    """``resume=`` names something that is not a resumable run directory."""


def expand_resume(args: list[str]) -> list[str]:
    """Replace ``resume=<run_dir>`` by the overrides that continue that run; others pass through.

    A sweep is left alone: ``resume=<sweep dir>`` resumes it trial by trial (``resume_trial``).
    """
    given = [a for a in args if a.startswith("resume=")]
    if not given or {"-m", "--multirun"} & set(args):
        return args
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser().resolve()
    if (run_dir / MULTIRUN_FILE).is_file():  # a sweep run by a preset (hydra.mode) without -m
        return args
    saved = saved_overrides(run_dir)
    ckpt, step = continue_from(run_dir) or (None, 0)  # without one, the run starts over
    continued = [
        *saved,
        *(a for a in args if not a.startswith("resume=")),
        f"hydra.run.dir={quoted(run_dir)}",
        f"ckpt_path={quoted(ckpt) if ckpt else 'null'}",
    ]
    if logs_to_tensorboard(run_dir):
        continued.append(f"++logger.tensorboard.purge_step={purge_step(step)}")
    return continued


def continue_from(run_dir: Path) -> tuple[Path, int] | None:
    """The run's newest checkpoint to continue from and its optimizer steps (each checkpoint
    is read once), None if it has none."""
    found = [run_dir / "checkpoints" / name for name in CHECKPOINTS]
    steps = [(path, int(read_checkpoint(path).get("global_step", 0)))
             for path in found if path.is_file()]  # fmt: skip
    return max(steps, key=lambda newest: newest[1]) if steps else None


def check_sweep_resume(args: list[str]) -> None:
    """``resume=<sweep dir>`` without ``-m`` (and without a preset that sets multirun) would
    start a single run in a new directory before failing: refuse it first."""
    given = [a for a in args if a.startswith("resume=")]
    if not given or {"-m", "--multirun"} & set(args):
        return
    sweep_dir = Path(given[-1].split("=", 1)[1]).expanduser().resolve()
    if not (sweep_dir / MULTIRUN_FILE).is_file():
        return
    if any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(args)):
        return  # a sweep on the command line: multirun by a preset, or Hydra's own refusal
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        mode = compose("train", overrides=args, return_hydra_config=True).hydra.mode
    if mode != RunMode.MULTIRUN:
        raise ResumeError(f"resume={sweep_dir}: a sweep; add -m (and the sweep's own overrides)")


def sweep_resume_command(sweep_dir: Path) -> str:
    """The command that resumes a sweep: its own overrides (``multirun.yaml``, the launcher's
    and sweeper's settings included) and ``resume=<sweep dir>``, which finishes exactly the
    trials that did not finish."""
    saved = OmegaConf.load(sweep_dir / MULTIRUN_FILE).hydra.overrides
    kept = [str(o) for o in saved.hydra if override_key(str(o)).startswith(SWEEP_SETTINGS)]
    kept += [str(o) for o in saved.task if override_key(str(o)) != "resume"]
    words = ["python", "-m", "cnnlab.train", "-m", *kept, f"resume={sweep_dir}"]
    return " ".join(shlex.quote(word) for word in words)


def logs_to_tensorboard(run_dir: Path) -> bool:
    """Whether the run's resolved config has the TensorBoard logger, whose events get purged."""
    config = run_dir / "config.yaml"
    return (
        config.is_file()
        and OmegaConf.select(OmegaConf.load(config), "logger.tensorboard") is not None
    )


def saved_overrides(run_dir: Path) -> list[str]:
    """The run's own overrides, without those that only described one attempt, and where it
    found configs of its own (``hydra.searchpath``: a network of the user's, say)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file() and run_dir.is_dir() and not began(run_dir):
        raise ResumeError(
            f"resume={run_dir}: this run was stopped or refused before it began, so there is "
            f"nothing to resume; run its command again (hydra.run.dir={run_dir} reuses the "
            "directory)"
        )
    if not path.is_file():
        what = "no such directory" if not run_dir.is_dir() else f"no {path.relative_to(run_dir)}"
        raise ResumeError(f"resume={run_dir}: not a cnnlab run directory ({what})")
    overrides = [str(o) for o in OmegaConf.load(path)]
    hydra = run_dir / ".hydra" / "hydra.yaml"
    if hydra.is_file():
        given = OmegaConf.select(OmegaConf.load(hydra), "hydra.overrides.hydra") or []
        overrides = [
            str(o) for o in given if override_key(str(o)) == "hydra.searchpath"
        ] + overrides
    return [o for o in overrides if override_key(o) not in PER_ATTEMPT_KEYS]


def override_key(override: str) -> str:
    """The config key an override sets: ``+a.b=1``, ``~a.b`` and ``a.b=1`` all set ``a.b``."""
    return override.split("=", 1)[0].lstrip("+~")


def quoted(path: Path) -> str:
    """A path as a Hydra override value, whatever characters it holds."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


log = logging.getLogger(__name__)

ATTEMPT_FILES = ("result.json", "config.yaml", "checkpoints", "tensorboard")


def relevant_overrides(overrides: list[str], hydra: DictConfig) -> list[str]:
    """Overrides that change what a trial computes (not where it writes, how many threads...):
    those its ``hydra`` config does not leave out of trial names."""
    excluded = set(hydra.job.config.override_dirname.exclude_keys)
    return sorted(o for o in overrides if override_key(o) not in excluded)


def finished_trial(cfg: DictConfig) -> dict[str, Any] | None:
    """The recorded result of a sweep trial (its config composed, ``hydra.job.num`` set) that
    already finished with the same overrides; None if it has yet to finish."""
    run_dir = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
    record = read_result(run_dir)
    if record and record.get("status") in DONE and _same_overrides(record, cfg.hydra):
        return record
    return None


def resume_trial(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """Under ``resume=`` or a SLURM requeue: the recorded result if this trial already
    finished, else None; an interrupted trial with a checkpoint is pointed at it (``cfg`` is
    updated to continue in place), any other earlier attempt is set aside for the rerun."""
    resuming = bool(cfg.get("resume"))
    if resuming and HydraConfig.get().mode != RunMode.MULTIRUN:
        raise ConfigError(f"resume={cfg.resume}: resumes a sweep; add -m (multirun)")
    if not (resuming or requeued_by_slurm()):
        return None
    record = read_result(run_dir)
    same = record is None or _same_overrides(record, HydraConfig.get())
    if record and record.get("status") in DONE and same:
        log.info("Resume: %s already %s (val/acc %s); skipped", run_dir, record["status"],
                 record["val/acc"])  # fmt: skip
        return record
    interrupted = record is None or record.get("status") == "interrupted"
    if same and interrupted and (newest := continue_from(run_dir)):
        continue_in_place(cfg, *newest)
        log.info("Resume: %s continues from %s (step %d)", run_dir, *newest)
        return None
    set_aside_earlier_attempt(run_dir)
    return None


def requeued_by_slurm() -> bool:
    """Whether SLURM restarted this job (it counts restarts in SLURM_RESTART_COUNT)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


def continue_in_place(cfg: DictConfig, ckpt: Path, step: int) -> None:
    """Point a trial's config at its checkpoint, and TensorBoard at the steps after it."""
    OmegaConf.update(cfg, "ckpt_path", str(ckpt))
    if OmegaConf.select(cfg, "logger.tensorboard") is not None:
        OmegaConf.update(cfg, "logger.tensorboard.purge_step", purge_step(step), force_add=True)


def purge_step(step: int) -> int:
    """The first TensorBoard step to drop when continuing from a checkpoint taken after
    ``step`` optimizer steps: what is logged at ``step`` (the epoch's metrics, logged at the
    optimizer step) describes the checkpoint's own state and stays."""
    return step + 1


def _same_overrides(record: dict[str, Any], hydra: DictConfig) -> bool:
    now = list(hydra.overrides.task)
    return relevant_overrides(record.get("overrides", []), hydra) == relevant_overrides(now, hydra)


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
