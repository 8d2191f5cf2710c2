"""Per-trial thread caps, so parallel trials share the cores instead of fighting over them.

PyTorch starts one intra-op thread per core in every process; n parallel trials would run
n x cores threads. ``speed.threads`` (set from the launcher's job count by the parallel presets)
caps each trial so that jobs x threads <= cores.
"""

from __future__ import annotations

import os

import torch

from cnnlab.errors import CnnlabError


def cores() -> int:
    """Cores this process may run on (the affinity mask: what a container or SLURM gives us)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_job(n_jobs: int) -> int:
    """Threads for each of ``n_jobs`` parallel trials; joblib's n_jobs <= 0 means cores+1+n_jobs."""
    jobs = int(n_jobs) if int(n_jobs) > 0 else max(1, cores() + 1 + int(n_jobs))
    return max(1, cores() // jobs)


def cap_threads(threads: int | None) -> None:
    """Limit this process's PyTorch CPU threads (None: PyTorch's default, one per core)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise CnnlabError(f"speed.threads={threads!r}: must be an integer >= 1 or null")
    torch.set_num_threads(threads)
