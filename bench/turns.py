"""Two benchmark processes that take turns, one timed window each, so both see the same machine.

A shared CPU drifts: the same loop runs tens of percent faster or slower minutes apart, and
half-second windows of one run differ within a minute (docs/speed.md). Timing the plain loop and
cnnlab one after the other puts that drift into their ratio. Taking turns removes it: only the
process holding the turn runs, the other waits blocked in a read (no CPU), and the turn passes
at every window edge, so window k of one side and window k of the other run about a second
apart.

The turn is a byte passed through two named pipes in ``directory``: ``first`` and ``second``,
each the inbox of the process of that role. A process that finishes sends ``DONE`` instead, and
the other then runs alone (its later windows have no partner).
"""

from __future__ import annotations

import os
import select
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import CnnlabError

ROLES = ("first", "second")
TURN, DONE = b"t", b"x"


@contextmanager
def pipes(directory: Path) -> Iterator[Path]:
    """The two inboxes, there while both processes run (``make bench`` starts them inside)."""
    directory.mkdir(parents=True)  # never someone else's pipes: an existing one is an error
    try:
        for role in ROLES:
            os.mkfifo(directory / role)
        yield directory
    finally:
        shutil.rmtree(directory)


class Turns:
    """One side of the turn-taking: ``take`` before a timed window, ``give`` after it."""

    def __init__(self, directory: str | Path, role: str, timeout_s: float = 600) -> None:
        if role not in ROLES:
            raise CnnlabError(f"turns role={role!r}: must be one of {', '.join(ROLES)}")
        other = ROLES[1 - ROLES.index(role)]
        # Read-write opens of a FIFO never block (Linux), whichever process comes first.
        self._inbox = os.open(Path(directory) / role, os.O_RDWR)
        self._outbox = os.open(Path(directory) / other, os.O_RDWR)
        self.role, self.timeout_s = role, timeout_s
        self.holding = self.alone = self._joined = False

    def take(self) -> None:
        """Block until it is this process's turn (no-op while holding it or running alone)."""
        if self.holding or self.alone:
            return
        if not self._joined and self.role == "second":
            os.write(self._outbox, TURN)  # joining: the first process goes first
        self._joined = True
        ready, _, _ = select.select([self._inbox], [], [], self.timeout_s)
        if not ready:
            raise CnnlabError(f"turns: no turn from the other process in {self.timeout_s:g} s")
        self.alone = os.read(self._inbox, 1) == DONE
        self.holding = True

    def give(self) -> None:
        """Pass the turn to the other process."""
        if self.holding and not self.alone:
            os.write(self._outbox, TURN)
            self.holding = False

    def leave(self) -> None:
        """This process is done: the other runs alone from now on."""
        if not self.alone:
            os.write(self._outbox, DONE)
        self.alone = True
        for fd in (self._inbox, self._outbox):
            os.close(fd)
