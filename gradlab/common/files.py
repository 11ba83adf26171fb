"""Writing results without losing any: fresh run directories and whole-or-nothing files
(JSON, figures as PNG and PDF).

A run is written into a hidden staging directory beside its final name and renamed into place
when every file is there, so a run directory is complete or absent. Its name is reserved first
with an exclusive ``mkdir``, so two runs never share a directory and no run overwrites another.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(out: Path) -> None:
    """Raise OSError with the reason when runs cannot be written under ``out``."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a directory", str(out))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out, prefix=".gradlab-probe-"):
        pass


def reserve(out: Path, stem: str) -> Path:
    """Create and return a new, empty directory ``out/stem`` (``-2``, ``-3``, … if taken)."""
    for n in range(1, 10_000):
        path = out / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run directory name for {stem!r} under {out}")


@dataclass(frozen=True)
class RunDir:
    """staging: where to write now; final: where the run will be once the block succeeds."""

    staging: Path
    final: Path


def growing_run_dir(out: Path, stem: str) -> Path:
    """A new run directory ``out/<time>_<stem>`` for a run that adds files as it goes (each written
    whole with :func:`atomic_write`), unlike :func:`fresh_run_dir`'s, which appears whole at the end."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return reserve(out, f"{datetime.now():%Y%m%d-%H%M%S}_{stem}")


@contextmanager
def fresh_run_dir(out: Path, stem: str) -> Iterator[RunDir]:
    """A new run directory ``out/<time>_<stem>`` (``-2``, ``-3``, … if taken), written whole or not at all."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now():%Y%m%d-%H%M%S}_{stem}"
    final = reserve(out, stem)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{final.name}.partial-"))
    try:
        yield RunDir(staging, final)
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private
        os.replace(staging, final)  # onto the reserved, still empty directory
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        final.rmdir()
        raise


def atomic_write(path: Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    Without ``overwrite`` an existing ``path`` raises FileExistsError before anything is written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; not overwriting it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig, stem: Path, overwrite: bool = False) -> list[Path]:
    """Write a matplotlib figure as ``stem.png`` and ``stem.pdf``, each whole or not at all."""
    stem = Path(stem)
    return [atomic_write(stem.with_suffix(f".{fmt}"), lambda p, f=fmt: fig.savefig(p, format=f), overwrite)
            for fmt in ("png", "pdf")]


def json_ready(value):
    """``value`` with non-finite floats replaced by the strings "inf", "-inf" and "nan" (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_json(path: Path, data) -> None:
    Path(path).write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")
