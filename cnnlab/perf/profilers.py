"""A Trainer profiler for when nobody is profiling: Lightning's default, minus its cost."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Records nothing, like Lightning's default ``PassThroughProfiler``, but for less.

    Lightning wraps every hook call in ``with trainer.profiler.profile(name):``, over a hundred
    times a training step with cnnlab's callbacks. The default builds a generator-based context
    manager each time; this returns one shared ``nullcontext`` (docs/speed.md has the cost).
    ``trainer.profiler=simple`` (or ``advanced``, ``pytorch``) still profiles for real;
    ``speed.lean_profiler=false`` gives Lightning's default.
    """

    def profile(self, action_name: str) -> AbstractContextManager:
        return _NOTHING
