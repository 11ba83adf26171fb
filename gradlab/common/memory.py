"""Memory: keep a long run's resident memory flat on glibc; refuse a run that cannot fit.

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
import os
from typing import Optional

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


def available_bytes() -> Optional[int]:
    """Memory this process can still have: Linux's MemAvailable, else the physical memory; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def beyond_memory(need: int) -> Optional[str]:
    """None when ``need`` bytes fit in the available memory, else the words saying they do not."""
    have = available_bytes()
    if have is None or need <= have:
        return None
    return f"needs at least {human_bytes(need)} of memory; this machine has {human_bytes(have)} available"
