"""Keep freed memory in the process instead of handing it back to the OS after every step.

A training step allocates and frees tens of MB of activations. glibc's default ``malloc``
serves such blocks with fresh ``mmap`` pages (or trims them off the heap when freed), so every
step page-faults its activations in again, a large share of the step time (docs/speed.md).
Raising glibc's mmap and trim thresholds keeps those pages mapped and reused, which is what
PyTorch's caching allocator does on a GPU. The cost: the process holds on to up to ``TRIM``
bytes of freed memory. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from cnnlab.errors import CnnlabError

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MMAP = 32 << 20  # blocks up to 32 MiB (glibc's maximum) come from the heap, not fresh mmaps
TRIM = 1 << 30  # free memory at the heap's top is returned to the OS beyond 1 GiB only
PAD = 64 << 20  # grow the heap 64 MiB at a time


def keep_freed_memory(enabled: bool | None) -> bool:
    """Tune glibc's malloc for training (``speed.keep_freed_memory``); True if it was."""
    if enabled is None or enabled is False:
        return False
    if enabled is not True:
        raise CnnlabError(f"speed.keep_freed_memory={enabled!r}: must be true, false or null")
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = {M_MMAP_THRESHOLD: MMAP, M_TRIM_THRESHOLD: TRIM, M_TOP_PAD: PAD}
    accepted = [libc.mallopt(option, value) == 1 for option, value in settings.items()]
    return all(accepted)
