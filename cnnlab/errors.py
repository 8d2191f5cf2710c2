"""How cnnlab reports problems: one line naming the key, value or file, and an exit code."""

from __future__ import annotations

import re


class CnnlabError(Exception):
    """A problem the user can fix (bad config, missing file, unreachable data source)."""

    exit_code = 2


def one_line(exc: BaseException) -> str:
    """A user-facing line for any exception; unwraps Hydra's instantiate wrapper to the cause.

    ``instantiate`` wraps errors raised by constructors (ours, Lightning's) in an
    InstantiationException whose text holds the config key; the cause holds the reason.
    """
    cause = exc.__cause__
    if type(exc).__name__ == "InstantiationException" and cause is not None:
        if isinstance(cause, CnnlabError):
            return str(cause)
        key = re.search(r"full_key: (\S+)", str(exc))
        return f"{key.group(1) if key else 'config'}: {one_line(cause)}"
    text = str(exc)
    if cause is not None and str(cause) not in text:
        text += f" ({str(cause).splitlines()[0]})"
    lines = [line.strip() for line in text.split("Config search path")[0].splitlines()]
    skip = ("full_key", "object_type")
    return " ".join(line for line in lines if line and not line.startswith(skip)) or repr(exc)


def exit_code(exc: BaseException) -> int:
    """2 for bad input (config, files), 1 for everything else."""
    cause = exc.__cause__ if type(exc).__name__ == "InstantiationException" else None
    if isinstance(exc, CnnlabError) or cause is not None:
        return getattr(cause or exc, "exit_code", 2)
    return 1
