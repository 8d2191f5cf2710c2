"""``python -m cnnlab.train resume=<run_dir> [overrides]``: continue a stopped run where it was.

The run continues in the same directory with the same settings (its saved
``.hydra/overrides.yaml``, then any new overrides, e.g. ``trainer.max_epochs=10``), from its
``checkpoints/last.ckpt``: the end of the last finished epoch, which holds weights, optimizer
state, epoch counter, callback state and the RNG state (``RngState``), so the result equals an
uninterrupted run. TensorBoard continues in the same event directory; events logged after that
checkpoint (a partly trained epoch) are purged so curves have no duplicate steps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf

from cnnlab.checkpoints import read_checkpoint
from cnnlab.errors import CnnlabError

RESUME_FROM = Path("checkpoints") / "last.ckpt"
# Overrides that belong to one attempt, not to the run: recomputed on every resume.
PER_ATTEMPT_KEYS = ("ckpt_path", "logger.tensorboard.purge_step")


class ResumeError(CnnlabError):
    """``resume=`` names something that is not a resumable run directory."""


def expand_resume(args: list[str]) -> list[str]:
    """Replace ``resume=<run_dir>`` by the overrides that continue that run; others pass through.

    A sweep is left alone: ``resume=<sweep dir>`` resumes it trial by trial (``resume_sweep``).
    """
    given = [a for a in args if a.startswith("resume=")]
    if not given or {"-m", "--multirun"} & set(args):
        return args
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser().resolve()
    if (run_dir / "multirun.yaml").is_file():  # a sweep run by a preset (hydra.mode) without -m
        return args
    saved = saved_overrides(run_dir)
    ckpt = run_dir / RESUME_FROM
    continued = [
        *saved,
        *(a for a in args if not a.startswith("resume=")),
        f"hydra.run.dir={quoted(run_dir)}",
        f"ckpt_path={quoted(ckpt) if ckpt.is_file() else 'null'}",
    ]
    if logs_to_tensorboard(run_dir):
        continued.append(f"++logger.tensorboard.purge_step={global_step(ckpt)}")
    return continued


def logs_to_tensorboard(run_dir: Path) -> bool:
    """Whether the run's resolved config has the TensorBoard logger, whose events get purged."""
    config = run_dir / "config.yaml"
    return (
        config.is_file()
        and OmegaConf.select(OmegaConf.load(config), "logger.tensorboard") is not None
    )


def saved_overrides(run_dir: Path) -> list[str]:
    """The run's own overrides, without those that only described one attempt."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        what = "no such directory" if not run_dir.is_dir() else f"no {path.relative_to(run_dir)}"
        raise ResumeError(f"resume={run_dir}: not a cnnlab run directory ({what})")
    overrides = [str(o) for o in OmegaConf.load(path)]
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in PER_ATTEMPT_KEYS]


def global_step(ckpt: Path) -> int:
    """Optimizer steps done by the checkpoint (0 without one: the run starts over)."""
    if not ckpt.is_file():
        return 0
    return int(read_checkpoint(ckpt).get("global_step", 0))


def quoted(path: Path) -> str:
    """A path as a Hydra override value, whatever characters it holds."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def apply_resume(argv: list[str]) -> None:
    """Expand ``resume=`` in ``argv`` in place, before Hydra reads it; a bad one exits 2."""
    try:
        argv[1:] = expand_resume(argv[1:])
    except CnnlabError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


class RngState(L.Callback):
    """Keeps the global torch RNG (dropout masks) in checkpoints, so resuming repeats the draws."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
