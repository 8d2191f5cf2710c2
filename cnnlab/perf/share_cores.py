"""Training threads follow the cores that other processes leave free (``speed.share_cores``).

PyTorch's OpenMP threads spin-wait between parallel regions. Two trainings started side by side
with one thread per core each spin against each other, and each runs at a fraction of half its
speed. One thread each does not fight at all. A spin policy (``OMP_WAIT_POLICY=PASSIVE``) costs
a lone run a fifth of its speed instead (docs/speed.md has the numbers). So once a second of
training, ``ShareCores`` reads how much CPU the rest of the machine used since its last look
(``/proc/stat``'s busy time minus this process's own, from ``/proc/self/stat``) and sets
PyTorch's thread count to the cores left over: all of them when alone, fewer when others work.

It is off under ``trainer.deterministic=true``, because the thread count can change the order
of a convolution's sums, and with it the last bits of the result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from cnnlab.perf.threads import cores

INTERVAL_S = 1.0  # how often to look: many steps apart, so the look (two /proc reads) is noise
PROC_STAT = Path("/proc/stat")  # Linux; elsewhere (macOS) the threads stay as they are


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the cores this process may run on, CPU seconds of this process)
    since boot. Only those cores: on a cluster node, other jobs' cores are not ours to share."""
    mine = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    busy = 0
    for line in PROC_STAT.read_text().splitlines():
        name, *values = line.split()
        if name in mine:  # user nice system idle iowait irq softirq steal ...
            fields = [int(v) for v in values[:8]]
            busy += sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return busy / ticks, (int(own[11]) + int(own[12])) / ticks  # utime + stime


Sample = tuple[float, float, float]  # (wall seconds, machine busy CPU seconds, own CPU seconds)


def machine_sample() -> Sample:
    """Now, by the monotonic clock and /proc: what ``ShareCores`` compares once a second."""
    return (time.monotonic(), *cpu_seconds())


def threads_left(others_busy: float, total: int, cap: int) -> int:
    """Threads for this process when others keep ``others_busy`` cores busy: the rest, >= 1."""
    return max(1, min(cap, total - int(others_busy + 0.5)))


class ShareCores(L.Callback):
    """Re-sets ``torch.set_num_threads`` once a second from the cores others leave free.

    ``sample`` is where the CPU times come from: the machine's (/proc), or a test's own."""

    def __init__(
        self, max_threads: int | None = None, sample: Callable[[], Sample] = machine_sample
    ) -> None:
        self.max_threads = max_threads
        self.sample = sample
        self.last: Sample | None = None
        self.threads_before = torch.get_num_threads()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.threads_before = torch.get_num_threads()
        if PROC_STAT.is_file() and hasattr(os, "sched_getaffinity"):
            self.last = self.sample()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.last is not None and time.monotonic() - self.last[0] >= INTERVAL_S:
            self.retune()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.set_num_threads(self.threads_before)  # validation and testing as configured
        self.last = None

    def retune(self) -> int:
        """Look at the machine's CPU use since the last look; set and return the threads."""
        now, busy, own = self.sample()
        if self.last is None:
            self.last = (now, busy, own)
            return torch.get_num_threads()
        wall = max(now - self.last[0], 1e-3)
        others = max(0.0, (busy - self.last[1]) - (own - self.last[2])) / wall
        self.last = (now, busy, own)
        threads = threads_left(others, cores(), self.max_threads or cores())
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        return threads
