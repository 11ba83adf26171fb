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
import signal
import tempfile
import threading
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


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C (SIGINT) held back until the block ends, then raised as KeyboardInterrupt. Only the
    main thread receives signals; elsewhere, and in a process that ignores SIGINT (started with
    nohup, or in a shell's background), the block runs as it is."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def atomic_write_set(writers: dict[Path, Callable[[Path], None]], overwrite: bool = False) -> list[Path]:
    """Write several files as one set: each ``write(tmp)`` to a temporary file beside its path, then
    all renamed into place with Ctrl-C held back, so the set appears complete or not at all.

    Without ``overwrite`` any existing path raises FileExistsError before anything is written.
    """
    paths = [Path(p) for p in writers]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); not overwriting")
    temps: dict[Path, Path] = {}
    try:
        for path, write in zip(paths, writers.values()):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
            os.close(fd)
            temps[path] = Path(tmp)
            write(Path(tmp))
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        with interrupts_held():
            for path, tmp in temps.items():
                os.replace(tmp, path)
            temps.clear()
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return paths


def figure_writers(fig, stem: Path) -> dict[Path, Callable[[Path], None]]:
    """What writes a matplotlib figure as ``stem.png`` and ``stem.pdf`` (for :func:`atomic_write_set`)."""
    stem = Path(stem)
    return {stem.with_suffix(f".{fmt}"): (lambda p, f=fmt: fig.savefig(p, format=f)) for fmt in ("png", "pdf")}


def save_figure(fig, stem: Path, overwrite: bool = False) -> list[Path]:
    """Write a matplotlib figure as ``stem.png`` and ``stem.pdf``, the pair whole or not at all."""
    return atomic_write_set(figure_writers(fig, stem), overwrite)


def json_ready(value):
    """``value`` with non-finite floats replaced by the strings "inf", "-inf" and "nan" (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def finite_or_null(values) -> list:
    """A sequence of numbers as a JSON list, its non-finite entries (an exact zero's log10, −inf) as
    null: a curve's status or caption says why."""
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def write_json(path: Path, data) -> None:
    Path(path).write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")
