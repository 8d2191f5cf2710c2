"""``python -m cnnlab.leaderboard <sweep dir>``: rebuild and print a sweep's leaderboard.

The table is built from the trials' own ``result.json`` files (``cnnlab.sweeps.leaderboard``),
so it can be rebuilt at any time: after a crash, a resume, or while the sweep still runs.
"""

from __future__ import annotations

from cnnlab.signals import exit_on_signals

if __name__ == "__main__":
    exit_on_signals()  # first: a Ctrl-C while the imports below load is one line, no traceback

import argparse
import sys
from pathlib import Path

from cnnlab.errors import say
from cnnlab.sweeps.leaderboard import summarize, trial_dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.leaderboard", description=__doc__)
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (outputs/sweeps/...)")
    sweep_dir = parser.parse_args(argv).sweep_dir
    if not sweep_dir.is_dir() or not trial_dirs(sweep_dir):
        say(f"{sweep_dir}: not a sweep directory (no trials)")
        return 2
    return summarize(sweep_dir)


if __name__ == "__main__":
    sys.exit(main())
