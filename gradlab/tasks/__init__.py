"""Layer 2, tasks: sequence tasks, generated offline from a seed (or read from local files), their
datasets, and the problem around a model (``problem``: encoder → model → readout, and its loss) with
its files on disk (``weights``).

``TASKS`` maps each task's name to its :class:`~gradlab.tasks.base.Task`; :func:`datasets` makes
the train/dev/test splits a training run uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from gradlab.tasks import adding, copy_memory, digit_sum, images, temporal_order
from gradlab.tasks.base import Dataset, Task

TASKS: dict[str, Task] = {t.name: t for t in (digit_sum.TASK, adding.TASK, copy_memory.TASK, temporal_order.TASK,
                                              images.MNIST_ROWS, images.DIGITS_ROWS)}
SPLITS = ("train", "dev", "test")
DEFAULT_SIZES = {"train": 10_000, "dev": 1_000, "test": 1_000}


def datasets(task: Task, length: int, seed: int, sizes: Optional[dict[str, int]] = None,
             data_dir: Optional[Path] = None) -> dict[str, Dataset]:
    """The train, dev and test sets of ``task`` at ``length``.

    digit-sum: the book's datasets (generated exactly as the book does) when ``length`` is one of
    the book's and no sizes are given; files written by ``gradlab data`` when ``data_dir`` is given;
    otherwise the book's construction at this length from ``seed`` — with ``sizes`` that are all
    multiples of 100, each (n1, n2) pair size / 100 times per split (as ``gradlab data --copies``);
    other sizes draw that many examples at random from the same distribution. Generated tasks: ``sizes``
    (default ``DEFAULT_SIZES``) examples per split, each split from its own stream of ``seed``.
    Image tasks: the fixed sets, the dev split drawn by ``seed``.
    """
    task.check_length(length)
    if task.load is not None:
        return task.load(data_dir, seed)
    if task is digit_sum.TASK:
        if data_dir is not None:
            return digit_sum.read_datasets(data_dir, length)
        book_sized = sizes is None or all(n % digit_sum.PAIRS == 0 for n in sizes.values())
        if book_sized:  # the book's construction: each (n1, n2) pair size / 100 times per split
            seed_lengths = digit_sum.BOOK_LENGTHS if length in digit_sum.BOOK_LENGTHS else (length,)
            copies = None if sizes is None else {name: n // digit_sum.PAIRS for name, n in sizes.items()}
            return digit_sum.book_datasets(seed_lengths, seed, copies)[length]
    sizes = DEFAULT_SIZES if sizes is None else sizes
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {name: task.make(length, sizes[name], np.random.default_rng(stream)) for name, stream in zip(SPLITS, streams)}


__all__ = ["TASKS", "SPLITS", "Task", "Dataset", "datasets"]
