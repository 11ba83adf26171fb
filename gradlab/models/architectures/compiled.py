"""The compiled steps of the sweeps (``forward_steps.cpp``, ``sweep_steps.cpp``), built once and cached.

A sweep's step is the same few elementwise operations and one recurrent matrix product for every
step; eagerly that is half a dozen torch kernels and their Python dispatch a step.
``sweep_steps.cpp`` runs a whole span of backward steps in one call, with the same arithmetic in the
same order: the *quiet* spans (nothing merges into the carry, nothing rescales it) and the *entered*
ones (the explicit gradient merged into the carry at every step, by the plain or the log-domain
scale, and the log-domain carry rescaled after each), measuring each row it stores.
``forward_steps.cpp`` runs a layer's whole forward sweep, keeping its tape. Each architecture's eager
steps (``forward_sweep``, ``after_entering``) and the scales' ``enter`` and ``renormalize`` are their
reference, and tests/engine/test_compiled.py and test_forward_steps.py hold them to each other.

The sources are compiled with torch's own extension builder the first time they are needed (about
15 s on two cores, a C++ compiler and ninja required) and cached under ``$GRADLAB_CACHE_DIR``
(default ``~/.cache/gradlab``), keyed by the sources and headers, torch's version, the platform and
the build flags; later processes load the cached library in about a millisecond. Without a compiler,
or with ``GRADLAB_COMPILED=0``, the sweeps run the eager steps, with the same results: a warning says
so once per process.

A span runs as slices of the batch on torch's intra-op threads (``at::parallel_for``). That needs
OpenMP in the build, and only helps if the library's OpenMP is the very libgomp torch runs its pool
on: torch's Linux wheels carry their own ``libgomp.so.1``, and the dynamic loader gives a library
that asks for that soname the copy already loaded, so the slices run on torch's own threads (tested:
no thread is added). Elsewhere (macOS, torch without OpenMP) the library is built without it and
runs the slices one after another, with the same results.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import torch

HERE = Path(__file__).parent
#: The library's sources, and the headers they share (all part of the cache key).
SOURCES = [HERE / "sweep_steps.cpp", HERE / "forward_steps.cpp"]
HEADERS = [HERE / "steps.h", HERE / "activations.h", HERE / "product.h"]
NAME = "gradlab_sweep_steps"
#: -ffp-contract=off: no fused multiply-adds the eager kernels do not use, so both paths round alike;
#: -fopenmp-simd: the loops marked ``omp simd`` are vectorised (no OpenMP runtime needed for that);
#: -fno-trapping-math: no value changes, but a select between two computed floats may be vectorised (without
#: it gcc keeps the loops over the nonlinearities' clamps and branches, activations.h, scalar: "control flow
#: in loop").
FLAGS = ["-O3", "-ffp-contract=off", "-fopenmp-simd", "-fno-trapping-math"]
#: What the parallel region needs, where :func:`shares_torch_openmp`.
OPENMP = ["-fopenmp"]
DTYPES = (torch.float32, torch.float64)


class EagerFallbackWarning(RuntimeWarning):
    """The compiled steps are unavailable; the sweeps run the eager steps (same results, slower)."""


def cache_dir() -> Path:
    """Where built kernels are kept: $GRADLAB_CACHE_DIR, else $XDG_CACHE_HOME/gradlab, else ~/.cache/gradlab."""
    if os.environ.get("GRADLAB_CACHE_DIR"):
        return Path(os.environ["GRADLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradlab"


@functools.cache
def shares_torch_openmp() -> bool:
    """Whether a library built with OpenMP here runs its parallel regions on torch's own thread pool:
    Linux, torch's intra-op backend OpenMP, and torch's own GNU ``libgomp.so.1`` beside libtorch (the
    soname an OpenMP build asks for, so the loader hands it the copy torch loaded)."""
    if sys.platform != "linux" or not torch.backends.openmp.is_available():
        return False
    return (Path(torch.__file__).parent / "lib" / "libgomp.so.1").exists()


def build_flags() -> list[str]:
    """The compiler flags of this machine's build: FLAGS, and OPENMP where :func:`shares_torch_openmp`."""
    return FLAGS + (OPENMP if shares_torch_openmp() else [])


def library_path() -> Path:
    """The cached library for this source, torch build, platform and flags."""
    parts = [f.read_text() for f in SOURCES + HEADERS] + [torch.__version__, str(torch.version.git_version), sys.platform, platform.machine(),
             " ".join(build_flags())]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return cache_dir() / "kernels" / key / f"{NAME}.so"


def enabled() -> bool:
    """False when the user turned the compiled steps off (GRADLAB_COMPILED=0)."""
    return os.environ.get("GRADLAB_COMPILED", "1").strip().lower() not in ("0", "false", "no", "off")


@functools.cache
def _load() -> Optional[str]:
    """Load the library (building it first if it is not cached). Returns None, or why it failed."""
    path = library_path()
    try:
        if path.exists():
            torch.ops.load_library(str(path))
        else:
            _build(path)  # builds and loads it
    except Exception as exc:  # no compiler, no ninja, a failed build: the eager steps instead
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    return None


def _build(path: Path) -> None:
    """Compile the source, then move the library into the cache whole (another process building at
    the same time only replaces it with the same file). A compiler that cannot build OpenMP gets a
    second try without it (the slices then run one after another)."""
    print(f"gradlab: compiling the sweeps' steps once (about 15 s), cached in {path.parent}",
          file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = build_flags()
    try:
        _compile(path, flags)
    except Exception:
        if flags == FLAGS:
            raise
        _compile(path, FLAGS)


def _compile(path: Path, flags: list[str]) -> None:
    """Build with ``flags`` in a fresh directory beside the cache entry, load it, move it to ``path``."""
    from torch.utils import cpp_extension  # 0.3 s to import: only when building

    build = Path(tempfile.mkdtemp(prefix="build-", dir=path.parent))
    search = os.environ.get("PATH", "")
    try:
        if shutil.which("ninja") is None:  # the ninja wheel's binary, where its venv's bin is not on PATH
            import ninja
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + search
        cpp_extension.load(name=NAME, sources=[str(f) for f in SOURCES], extra_cflags=flags,
                           extra_include_paths=[str(HERE)],
                           extra_ldflags=[f for f in flags if f in OPENMP], build_directory=str(build),
                           is_python_module=False, verbose=False)  # also loads it into this process
        os.replace(build / f"{NAME}.so", path)
    finally:
        os.environ["PATH"] = search
        shutil.rmtree(build, ignore_errors=True)


def kernels(like: torch.Tensor):
    """``torch.ops.gradlab`` when the compiled steps can run on tensors like ``like`` (CPU, float32
    or float64), else None — with a warning, once per process, when they were wanted but failed to load."""
    if like.device.type != "cpu" or like.dtype not in DTYPES or not enabled():
        return None
    failure = _load()
    if failure is not None:
        _warn_once(failure)
        return None
    return torch.ops.gradlab


@functools.cache
def _warn_once(failure: str) -> None:
    warnings.warn(f"gradlab: the compiled sweep steps are unavailable ({failure}); the backward sweeps run the "
                  f"eager steps instead (same results, slower). GRADLAB_COMPILED=0 turns them off without this "
                  f"warning.", EagerFallbackWarning, stacklevel=3)
