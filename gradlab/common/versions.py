"""The versions a result was made with, recorded beside it."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def gradlab_version() -> str:
    try:
        return version("gradlab")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def cpu_model() -> str:
    """The processor's model name ("AMD EPYC", "Intel(R) Xeon(R) Processor"; /proc/cpuinfo on Linux),
    or what ``platform`` knows of it elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    """{"gradlab", "torch", "numpy", "python", "platform", "torch_threads", "cpu_kernels", "cpu"}: the
    last three say which of torch's CPU code paths ran, on which float results depend bitwise: its
    kernel level (e.g. "AVX512") and the processor, since the math libraries under torch (MKL, oneDNN)
    choose their own paths by vendor and model too (an AMD EPYC and an Intel Xeon, both "AVX512",
    measured 1.5e-10 apart on the same float32 run)."""
    import numpy
    import torch

    return {"gradlab": gradlab_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "cpu": cpu_model()}
