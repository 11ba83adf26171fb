"""Keep a long run's resident memory flat on glibc.

The checkpointed backward pass allocates and frees segment-sized tensors (tens to hundreds of KB)
thousands of times. glibc serves such sizes from its heap once its adaptive mmap threshold has
risen, and the heap fragments: a million-step LSTM run grew to 5.7 GB of resident memory although
it never held more than a few hundred MB (measured here, 2026-11-22). Fixing the threshold at
64 KiB sends these buffers to mmap, which returns them to the system when freed; the same run then
stays flat (252 MB in the measurement that found this). The ``gradlab`` command calls this at start;
library users can call it themselves. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h
MMAP_THRESHOLD_BYTES = 64 * 1024


def keep_resident_memory_flat() -> bool:
    """Set glibc's mmap threshold to 64 KiB; True if it was set."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc
        return False
