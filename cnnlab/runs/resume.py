"""Resuming: a stopped run continues where it was; a resumed sweep skips its finished trials.

``python -m cnnlab.train resume=<run_dir> [overrides]`` continues a stopped run, and
``python -m cnnlab.train -m [its overrides] resume=<sweep_dir>`` a stopped sweep. One path:

1. ``resume=`` names the directory: ``conf/hydra/default.yaml`` makes it the run's
   ``hydra.run.dir`` (or the sweep's ``hydra.sweep.dir``), so the run writes where it was.
2. A run's settings are its saved overrides (``.hydra/overrides.yaml``, and the
   ``hydra.searchpath`` it found configs of its own on), which ``resumed_argv`` puts in front
   of the command's own (``cnnlab.train.prepare``): Hydra's grammar lets the later win, so
   ``resume=<run> trainer.max_epochs=10`` trains longer. A sweep's come from its command.
3. Composed, the config is pointed at the run's newest checkpoint (``continue_in_place``):
   ``checkpoints/last.ckpt`` (the end of the last finished epoch) or
   ``checkpoints/interrupted.ckpt`` (saved at a batch boundary when a signal stopped it),
   whichever holds more steps; without one the run starts over. A single run is pointed by
   ``cnnlab.runs.run_start.RunStart`` before Hydra writes anything (in every DDP rank, which
   re-runs the command), a sweep's trial by ``resume_trial`` as it starts.

A checkpoint holds weights, optimizer state, loop counters, callback state, the RNG state
(``RngState``), the data order's position in the epoch (``TensorLoader.state_dict``) and the
epoch's running train sums, so the result equals an uninterrupted run. TensorBoard continues in
the same event directory; events logged after that checkpoint are purged, so curves have no
duplicate steps.

Hydra has no multirun resume: the same command gives every trial the same
``<num>_<swept values>`` subdirectory, and each trial looks at its own ``result.json``:
finished with the same overrides means skip and report the recorded result; interrupted (by a
signal, or killed: no result.json) with a checkpoint continues from it in place; anything else
(failed, or no checkpoint) starts over, after the earlier attempt's files are moved aside into
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

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Quote, QuotedString
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnnlab.callbacks.signals import INTERRUPTED_CKPT
from cnnlab.errors import CnnlabError
from cnnlab.runs.checkpoints import read_checkpoint
from cnnlab.runs.results import DONE, read_result
from cnnlab.runs.run_dir import began
from cnnlab.runs.swept import MULTIRUN_FILE

log = logging.getLogger(__name__)

CHECKPOINTS = ("last.ckpt", INTERRUPTED_CKPT)  # where a stopped run can continue from
SWEEP_SETTINGS = ("hydra.sweeper", "hydra.launcher", "hydra.searchpath")  # kept by a resume
# Overrides that belong to one attempt, not to the run: recomputed on every resume.
PER_ATTEMPT_KEYS = ("resume", "ckpt_path", "logger.tensorboard.purge_step")
ATTEMPT_FILES = ("result.json", "config.yaml", "checkpoints", "tensorboard")


class ResumeError(CnnlabError):
    """``resume=`` names something that is not a resumable run directory."""


def parsed(overrides: list[str]) -> list[Override]:
    """Overrides as Hydra reads them (``+a.b=1``, ``~a.b`` and ``a.b=1`` all have the key
    ``a.b``), each with the text it was written as (``input_line``)."""
    return OverridesParser.create().parse_overrides(overrides)


def resumed_argv(args: list[str]) -> list[str]:
    """A command line with ``resume=<run_dir>``: the run's own overrides in front of the
    command's (once: a DDP rank re-running rank 0's command finds them there already). A sweep's
    resume (``-m``, or a directory that holds a sweep) is left to the sweep."""
    given = [o for o in parsed([a for a in args if is_override(a)]) if o.key_or_group == "resume"]
    if not given or given[-1].is_sweep_override() or {"-m", "--multirun"} & set(args):
        return args
    if given[-1].value() in (None, "") or (resumed_dir(given[-1]) / MULTIRUN_FILE).is_file():
        return args
    saved = saved_overrides(resumed_dir(given[-1]))
    return args if args[: len(saved)] == saved else [*saved, *args]


def is_override(arg: str) -> bool:
    """Whether a command-line word is an override, not a flag (``-m``) or a flag's value."""
    return not arg.startswith("-") and ("=" in arg or arg.startswith("~"))


def resumed_dir(override: Override) -> Path:
    """The directory a ``resume=`` override names, as ``hydra.run.dir: ${resume}`` reads it."""
    return Path(str(override.value())).resolve()


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
    hydra = run_dir / ".hydra" / "hydra.yaml"
    given = (
        OmegaConf.select(OmegaConf.load(hydra), "hydra.overrides.hydra")
        if hydra.is_file()
        else None
    )
    searchpath = [o for o in parsed(list(given or [])) if o.key_or_group == "hydra.searchpath"]
    overrides = searchpath + parsed([str(o) for o in OmegaConf.load(path)])
    return [o.input_line for o in overrides if o.key_or_group not in PER_ATTEMPT_KEYS]


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints a resume can continue from, as they are on disk (none read)."""
    return [path for name in CHECKPOINTS if (path := run_dir / "checkpoints" / name).is_file()]


def newest_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    """The run's newest checkpoint to continue from and its optimizer steps (each checkpoint
    is read once), None if it has none."""
    steps = [(path, int(read_checkpoint(path).get("global_step", 0)))
             for path in checkpoints(run_dir)]  # fmt: skip
    return max(steps, key=lambda newest: newest[1]) if steps else None


def continue_in_place(cfg: DictConfig, run_dir: Path) -> tuple[Path, int] | None:
    """Point a run's config at its newest checkpoint (``ckpt_path``), and TensorBoard at the
    steps after it; the checkpoint and its steps, None where there is none to continue from."""
    newest = newest_checkpoint(run_dir)
    if newest is None:
        return None
    ckpt, step = newest
    OmegaConf.update(cfg, "ckpt_path", str(ckpt))
    if OmegaConf.select(cfg, "logger.tensorboard") is not None:
        OmegaConf.update(cfg, "logger.tensorboard.purge_step", purge_step(step), force_add=True)
    return newest


def purge_step(step: int) -> int:
    """The first TensorBoard step to drop when continuing from a checkpoint taken after
    ``step`` optimizer steps: what is logged at ``step`` (the epoch's metrics, logged at the
    optimizer step) describes the checkpoint's own state and stays."""
    return step + 1


def sweep_resume_command(sweep_dir: Path) -> str:
    """The command that resumes a sweep: its own overrides (``multirun.yaml``, the launcher's
    and sweeper's settings included) and ``resume=<sweep dir>``, which finishes exactly the
    trials that did not finish."""
    saved = OmegaConf.load(sweep_dir / MULTIRUN_FILE).hydra.overrides
    kept = [o for o in parsed(list(saved.hydra)) if o.key_or_group.startswith(SWEEP_SETTINGS)]
    kept += [o for o in parsed(list(saved.task)) if o.key_or_group != "resume"]
    words = ["python", "-m", "cnnlab.train", "-m", *(o.input_line for o in kept)]
    return " ".join(shlex.quote(word) for word in [*words, resume_override(sweep_dir)])


def resume_command(run_dir: Path, sweep_dir: Path | None) -> str:
    """The command that continues a stopped run: its sweep's (``resume=<sweep dir>`` finishes
    every unfinished trial), or its own, in Hydra's quoting (``resume_override``); "" when a
    single run has no checkpoint to continue from (its command is run again instead)."""
    if sweep_dir:
        return sweep_resume_command(sweep_dir)
    if not checkpoints(run_dir):  # whether one is there, not which: no checkpoint is read
        return ""
    return f"python -m cnnlab.train {shlex.quote(resume_override(run_dir))}"


def resume_override(directory: Path) -> str:
    """``resume=<directory>`` as Hydra reads it back: as is, or in Hydra's own quotes where its
    grammar gives a character of the path a meaning (a quote, a comma, a bracket, non-ASCII)."""
    plain = f"resume={directory}"
    try:
        if parsed([plain])[0].value() == str(directory):
            return plain
    except OverrideParseException:
        pass
    return f"resume={QuotedString(text=str(directory), quote=Quote.single).with_quotes()}"


def relevant_overrides(overrides: list[str], hydra: DictConfig) -> list[str]:
    """Overrides that change what a trial computes (not where it writes, how many threads...):
    those its ``hydra`` config does not leave out of trial names."""
    excluded = set(hydra.job.config.override_dirname.exclude_keys)
    return sorted(o.input_line for o in parsed(overrides) if o.key_or_group not in excluded)


def finished_trial(cfg: DictConfig) -> dict[str, Any] | None:
    """The recorded result of a sweep trial (its config composed, ``hydra.job.num`` set) that
    already finished with the same overrides; None if it has yet to finish."""
    run_dir = Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
    record = read_result(run_dir)
    if record and record.get("status") in DONE and _same_overrides(record, cfg.hydra):
        return record
    return None


def resume_trial(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """A sweep trial under ``resume=`` or a SLURM requeue: the recorded result if it already
    finished, else None; an interrupted trial with a checkpoint is pointed at it (``cfg`` is
    updated to continue in place), any other earlier attempt is set aside for the rerun. (A
    single run is resumed before Hydra starts it: ``cnnlab.runs.run_start``.)"""
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    if not (cfg.get("resume") or requeued_by_slurm()):
        return None
    record = read_result(run_dir)
    same = record is None or _same_overrides(record, HydraConfig.get())
    if record and record.get("status") in DONE and same:
        log.info("Resume: %s already %s (val/acc %s); skipped", run_dir, record["status"],
                 record["val/acc"])  # fmt: skip
        return record
    interrupted = record is None or record.get("status") == "interrupted"
    if same and interrupted and (newest := continue_in_place(cfg, run_dir)):
        log.info("Resume: %s continues from %s (step %d)", run_dir, *newest)
        return None
    set_aside_earlier_attempt(run_dir)
    return None


def requeued_by_slurm() -> bool:
    """Whether SLURM restarted this job (it counts restarts in SLURM_RESTART_COUNT)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


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
