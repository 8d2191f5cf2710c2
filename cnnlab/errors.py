"""How cnnlab reports problems: one ``cnnlab: error:`` line naming the key, value or file, and an
exit code (2 for bad input, 1 for the rest). The ground floor: every layer uses it, it uses none.
"""

from __future__ import annotations

import re
import sys
from typing import NoReturn


class CnnlabError(Exception):
    """A problem the user can fix (bad config, missing file, unreachable data source)."""

    exit_code = 2


def say(message: str, label: str = "error") -> None:
    """Print ``cnnlab: <label>: <message>`` on stderr: the one line a user reads."""
    print(f"cnnlab: {label}: {message}", file=sys.stderr, flush=True)


WRAPPERS = ("InstantiationException", "InterpolationResolutionError")  # Hydra's, OmegaConf's


def cnnlab_cause(exc: BaseException) -> CnnlabError | None:
    """The CnnlabError that Hydra's and OmegaConf's wrappers (nested: an instantiation that
    resolves an interpolation) were raised from, if any."""
    while type(exc).__name__ in WRAPPERS and (exc.__cause__ or exc.__context__) is not None:
        exc = exc.__cause__ or exc.__context__  # OmegaConf raises its wrapper without "from"
    return exc if isinstance(exc, CnnlabError) else None


def fail(exc: BaseException) -> NoReturn:
    """Say ``exc`` in one line and exit with its code."""
    say(one_line(exc))
    sys.exit(exit_code(exc))


def one_line(exc: BaseException) -> str:
    """A user-facing line for any exception; unwraps Hydra's instantiate wrapper to the cause.

    ``instantiate`` wraps errors raised by constructors (ours, Lightning's) in an
    InstantiationException whose text holds the config key; the cause holds the reason. Hydra's
    and OmegaConf's messages spread one sentence over lines (joined here); anyone else's run to
    pages (torch's), so only their first line is kept.
    """
    if (ours := cnnlab_cause(exc)) is not None:
        return str(ours)  # a constructor's or a resolver's (data=folder's) own line
    cause = exc.__cause__
    if type(exc).__name__ == "InstantiationException" and cause is not None:
        key = re.search(r"full_key: (\S+)", str(exc))
        return f"{key.group(1) if key else 'config'}: {one_line(cause)}"
    text = str(exc).strip()
    if not type(exc).__module__.startswith(("hydra", "omegaconf")):
        text = text.splitlines()[0] if text else ""
    if cause is not None and str(cause) not in text:
        text += f" ({one_line(cause)})"
    lines = [line.strip() for line in text.split("Config search path")[0].splitlines()]
    skip = ("full_key", "object_type")
    return " ".join(line for line in lines if line and not line.startswith(skip)) or repr(exc)


def exit_code(exc: BaseException) -> int:
    """2 for bad input (config, files), 1 for everything else."""
    cause = exc.__cause__ if type(exc).__name__ == "InstantiationException" else None
    cause = cnnlab_cause(exc) or cause
    if isinstance(exc, CnnlabError) or cause is not None:
        return getattr(cause or exc, "exit_code", 2)
    return 1
