"""Runs a Hydra entry point so that a bad command line costs one line, not a traceback."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from cnnlab.errors import CnnlabError, fail, one_line, say
from cnnlab.runs.results import write_json


def run_cli(main: Callable[[], object], prepare: Callable[[list[str]], None] | None = None) -> None:
    """Call a ``@hydra.main`` function, after ``prepare(sys.argv)`` (which may rewrite it);
    composition errors (unknown key, bad override), a CnnlabError before Hydra starts (or from
    a Hydra callback, by ``BeforeStart``) and an unwritable output directory exit 2 with one
    line. Lightning's ``srun`` hint is ignored while the command runs, and only then (a scoped
    filter: the caller's filters stay)."""
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra raise to us instead of printing its own
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SRUN_HINT)
            if prepare is not None:
                prepare(sys.argv)
            started(main)
    except CnnlabError as e:
        fail(e)
    except (HydraException, OmegaConfBaseException) as e:
        if wants_traceback:
            raise
        say(one_line(e) + quoting_hint(one_line(e)))
        sys.exit(2)
    except ValueError as e:  # Hydra's for ``group=null`` where a config overrides the group
        if wants_traceback or not str(e).startswith(NULL_GROUP):
            raise
        say(f"{e}: to drop a config group, write ~group (e.g. ~pruner)")
        sys.exit(2)
    except OSError as e:  # Hydra creating the run directory: read-only or full disk
        if wants_traceback:
            raise
        say(f"cannot write {e.filename}: {e.strerror}")
        sys.exit(2)


class BeforeStart(BaseException):
    """Stops a command from a Hydra callback, carrying the error that stops it: Hydra turns an
    Exception raised in a callback into a warning and goes on (``hydra._internal.callbacks``,
    1.3), and lets a BaseException through. ``run_cli`` reports the error as if raised there."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def started(main: Callable[[], object]) -> None:
    """Call ``main``; an error a Hydra callback stopped it with is raised as itself."""
    try:
        main()
    except BeforeStart as stopped:
        raise stopped.error from stopped.error.__cause__


# Lightning's hint, on any machine with SLURM installed, to prepend ``srun``, given as each
# Trainer is built and as it fits or tests: a cnnlab run outside SLURM is meant to be, and
# launcher=slurm starts its trials under srun itself
SRUN_HINT = "The `srun` command is available on your system"
NULL_GROUP = "Config group override must be a string or a list. Got NoneType"


def quoting_hint(message: str) -> str:
    """How to pass a value Hydra's override grammar cannot read unquoted (non-ASCII characters,
    brackets or quotes in a file name)."""
    found = re.search(r"LexerNoViableAltException: (\S+?)=(.*?) \^", message)
    if not found:
        return ""
    key, value = found.groups()
    items = value[1:-1].split(",") if value.startswith("[") and value.endswith("]") else None
    quoted = f"[{','.join(repr(v) for v in items)}]" if items else repr(value)
    return f'; quote the value for Hydra, and the whole override for the shell: "{key}={quoted}"'


def compute_and_report(
    compute: Callable[[], dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
    json_path: str | None,
) -> dict[str, Any]:
    """A command's body: compute, print, optionally save as JSON; a CnnlabError is one line."""
    try:
        result = compute()
        report(result)
        if json_path:
            write_json(Path(json_path), result)
    except CnnlabError as e:
        fail(e)
    return result
