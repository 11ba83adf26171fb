"""keep_resident_memory_flat sends mid-sized buffers to mmap, so freeing them returns the memory."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "gradlab" / "common" / "memory.py"

# The child loads the module by its path: importing the gradlab package would import torch, whose
# start leaves free heap chunks that serve the test's buffer whatever the threshold says.
CHILD = """
import ctypes, ctypes.util, importlib.util, sys
spec = importlib.util.spec_from_file_location("memory", sys.argv[2])
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)
keep_resident_memory_flat = memory.keep_resident_memory_flat

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                             "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "flat":
    assert keep_resident_memory_flat()
before = libc.mallinfo2().hblkhd
# 32 buffers between the 64 KiB set here and glibc's default 128 KiB threshold (free heap chunks
# left by the start may serve a few of them either way)
buffers = [libc.malloc(100 * 1024) for _ in range(32)]
print(libc.mallinfo2().hblkhd - before)
for p in buffers:
    libc.free(ctypes.c_void_p(p))
"""


def mmapped_bytes(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(MODULE)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_100_kib_buffers_are_mmapped_only_after_the_threshold_is_set():
    assert mmapped_bytes("default") == 0
    assert mmapped_bytes("flat") >= 24 * 100 * 1024
