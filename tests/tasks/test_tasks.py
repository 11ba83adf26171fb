"""The long-lag tasks follow their definitions; image rows read idx files and scikit-learn's digits."""

import gzip
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradlab.tasks import TASKS, datasets
from gradlab.tasks import adding, copy_memory, images, temporal_order


def test_adding_marks_one_value_in_each_half_and_targets_their_sum():
    x, y = adding.make(50, 400, np.random.default_rng(0))
    assert x.shape == (400, 50, 2) and x.dtype == np.float32
    marks = x[:, :, 1]
    assert np.all(marks.sum(axis=1) == 2)
    assert np.all(marks[:, :25].sum(axis=1) == 1) and np.all(marks[:, 25:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (x[:, :, 0] * marks).sum(axis=1), rtol=1e-6)
    assert x[:, :, 0].min() >= 0 and x[:, :, 0].max() <= 1


def test_adding_baseline_of_always_predicting_one_is_a_sixth():
    _, y = adding.make(10, 40_000, np.random.default_rng(1))
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.005
    assert TASKS["adding"].chance == pytest.approx(1 / 6)


def test_copy_memory_asks_for_the_ten_symbols_after_the_delimiter():
    L = 35
    x, y = copy_memory.make(L, 64, np.random.default_rng(0))
    assert x.shape == y.shape == (64, L)
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    assert np.all(x[:, :10] < 8)
    assert np.all(x[:, L - 11] == copy_memory.DELIMITER)
    assert np.all(np.delete(x, list(range(10)) + [L - 11], axis=1) == copy_memory.BLANK)
    assert np.all(y[:, :-10] == copy_memory.BLANK)


def test_copy_memory_baseline_is_the_cross_entropy_of_guessing_the_symbols():
    L = 40
    _, y = copy_memory.make(L, 16, np.random.default_rng(0))
    logits = torch.full((16, L, 9), -1e9, dtype=torch.float64)
    logits[:, :-10, copy_memory.BLANK] = 0.0  # sure of the blanks
    logits[:, -10:, :8] = 0.0  # uniform over the 8 symbols
    ce = F.cross_entropy(logits.flatten(0, 1), torch.as_tensor(y).flatten())
    assert float(ce) == pytest.approx(copy_memory.baseline_cross_entropy(L), rel=1e-12)
    assert copy_memory.baseline_cross_entropy(L) == pytest.approx(10 * math.log(8) / L)


def test_temporal_order_places_two_relevant_symbols_in_their_windows():
    L = 100
    x, y = temporal_order.make(L, 500, np.random.default_rng(0))
    relevant = x < 2
    assert np.all(relevant.sum(axis=1) == 2)
    first = relevant.argmax(axis=1)
    second = L - 1 - relevant[:, ::-1].argmax(axis=1)
    assert np.all((10 <= first) & (first < 20)) and np.all((50 <= second) & (second < 60))
    rows = np.arange(500)
    np.testing.assert_array_equal(y, 2 * x[rows, first] + x[rows, second])
    assert set(np.unique(y)) == {0, 1, 2, 3}


@pytest.mark.parametrize("name", ["adding", "copy", "temporal-order", "digit-sum"])
def test_generated_splits_are_seeded_and_distinct(name):
    task = TASKS[name]
    length = max(task.min_length, 12)
    a = datasets(task, length, seed=5, sizes={"train": 20, "dev": 10, "test": 10})
    b = datasets(task, length, seed=5, sizes={"train": 20, "dev": 10, "test": 10})
    c = datasets(task, length, seed=6, sizes={"train": 20, "dev": 10, "test": 10})
    np.testing.assert_array_equal(a["train"][0], b["train"][0])
    assert not np.array_equal(a["train"][0], c["train"][0])
    assert not np.array_equal(a["dev"][0], a["test"][0])


def test_lengths_are_checked():
    with pytest.raises(ValueError, match="at least 21"):
        TASKS["copy"].check_length(20)
    with pytest.raises(ValueError, match="28 steps"):
        TASKS["mnist-rows"].check_length(30)


# -- image rows -----------------------------------------------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=30, n_test=7, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        imgs, labels = images.MNIST_FILES[split]
        arrays[split] = (rng.integers(0, 256, size=(n, 28, 28)), rng.integers(0, 10, size=n))
        for name, array in zip((imgs, labels), arrays[split]):
            data = _idx_bytes(array)
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_reads_what_was_written(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    np.testing.assert_array_equal(images.read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), arrays["test"][0])
    np.testing.assert_array_equal(images.read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}"), arrays["test"][1])


def test_mnist_rows_splits_and_scales_the_local_files(tmp_path):
    arrays = _write_mnist(tmp_path)
    data = images.load_mnist(tmp_path, seed=0)
    assert len(data["train"][1]) == 27 and len(data["dev"][1]) == 3 and len(data["test"][1]) == 7
    x, y = data["test"]
    assert x.shape == (7, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x, arrays["test"][0] / 255.0 * 2 - 1, atol=1e-6)
    np.testing.assert_array_equal(y, arrays["test"][1])
    together = np.concatenate([data["train"][1], data["dev"][1]])
    assert sorted(together) == sorted(arrays["train"][1])


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        images.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(np.zeros((2, 3, 3)))[:-1])
    with pytest.raises(ValueError, match="header promises"):
        images.read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        images.load_mnist(tmp_path, seed=0)
    with pytest.raises(FileNotFoundError, match="--data"):
        images.load_mnist(None, seed=0)


def test_sklearn_digits_stand_in_offline():
    pytest.importorskip("sklearn")
    data = datasets(TASKS["digits-rows"], 8, seed=0)
    assert sum(len(d[1]) for d in data.values()) == 1797
    x, _ = data["train"]
    assert x.shape[1:] == (8, 8) and x.min() >= -1 and x.max() <= 1
