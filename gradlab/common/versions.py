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


def versions() -> dict:
    """{"gradlab", "torch", "numpy", "python", "platform", "torch_threads", "cpu_kernels"}: the last two
    say which of torch's CPU code paths ran (e.g. "AVX512"), on which float results depend bitwise."""
    import numpy
    import torch

    return {"gradlab": gradlab_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(), "cpu_kernels": torch.backends.cpu.get_cpu_capability()}
