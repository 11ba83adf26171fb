"""Row-by-row image classification (seed 003): each image row is one step, the class is read at
the last row.

MNIST (28 × 28) is read from a local directory holding the four standard idx files (as published,
optionally gzipped); nothing is downloaded. Offline, the 8 × 8 digits that ship inside
scikit-learn (the optional extra ``gradlab[images]``) stand in. Pixels are scaled to [−1, 1] as
the seed's ``Normalize([0.5], [0.5])`` does.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np

from gradlab.tasks.base import Dataset, Task

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DEV_FRACTION = 0.1  # of the training images, held out for choosing the best checkpoint


def read_idx(path: Path) -> np.ndarray:
    """An array from an idx file (LeCun's MNIST format; ``.gz`` read transparently)."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = int(np.prod(dims)) if ndim else 1
    start = 4 + 4 * ndim
    if len(raw) - start != count * dtype.itemsize:
        raise ValueError(f"{path}: {len(raw) - start} data bytes, the header promises {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(tuple(int(d) for d in dims)).astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder} has no {name} (or {name}.gz); MNIST's four idx files are needed")


def _scaled(pixels: np.ndarray, top: float) -> np.ndarray:
    return ((pixels.astype(np.float32) / top) - 0.5) / 0.5


def _split_dev(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Dataset, Dataset]:
    order = np.random.default_rng(seed).permutation(len(y))
    n_dev = max(1, int(round(DEV_FRACTION * len(y))))
    dev, train = order[:n_dev], order[n_dev:]
    return (x[train], y[train]), (x[dev], y[dev])


def load_mnist(folder: Optional[Path], seed: int) -> dict[str, Dataset]:
    """MNIST from ``folder``: train (minus a seeded 10 % dev split), dev, test; x [N, 28, 28] in [−1, 1]."""
    if folder is None:
        raise FileNotFoundError("the mnist-rows task reads MNIST's idx files from a directory: pass --data DIR")
    folder = Path(folder)
    loaded = {}
    for split, (images, labels) in MNIST_FILES.items():
        x, y = read_idx(_find(folder, images)), read_idx(_find(folder, labels))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match")
        loaded[split] = (_scaled(x, 255.0), y.astype(np.int64))
    train, dev = _split_dev(*loaded["train"], seed)
    return {"train": train, "dev": dev, "test": loaded["test"]}


def load_sklearn_digits(folder: Optional[Path], seed: int) -> dict[str, Dataset]:
    """scikit-learn's 1797 8 × 8 digits, split 60/20/20 by ``seed``; x [N, 8, 8] in [−1, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits-rows task needs scikit-learn: pip install 'gradlab[images]'") from None
    bunch = load_digits()
    x, y = _scaled(bunch.images, 16.0), bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut1, cut2 = int(0.6 * len(y)), int(0.8 * len(y))
    parts = {"train": order[:cut1], "dev": order[cut1:cut2], "test": order[cut2:]}
    return {name: (x[idx], y[idx]) for name, idx in parts.items()}


MNIST_ROWS = Task(name="mnist-rows", summary="MNIST read row by row, 28 steps of 28 pixels (local idx files)",
                  target="class", outputs=10, chance=0.1, load=load_mnist, input_size=28, fixed_length=28)
DIGITS_ROWS = Task(name="digits-rows", summary="scikit-learn's 8×8 digits read row by row (offline stand-in for MNIST)",
                   target="class", outputs=10, chance=0.1, load=load_sklearn_digits, input_size=8, fixed_length=8)
