import numpy as np
import pytest

from gradlab.cli import main
from gradlab.tasks.digit_sum import (BOOK_LENGTHS, NUM_CLASSES, TASK, book_datasets, read_datasets, read_split,
                                     sample_batch)


@pytest.mark.parametrize("length", [1, 2, 3, 10, 35])
def test_digit_sum_batches_follow_the_books_construction(length):
    digits, labels = sample_batch(length, 500, np.random.default_rng(0))
    assert digits.shape == (500, length) and labels.shape == (500,)
    assert digits.min() >= 0 and digits.max() <= 9
    assert labels.max() < NUM_CLASSES
    np.testing.assert_array_equal(labels, digits[:, :2].sum(axis=1))
    if length > 2:
        # exactly one position after the first two may hold a digit (it may be 0)
        assert np.all((digits[:, 2:] != 0).sum(axis=1) <= 1)
        assert (digits[:, 2:] != 0).any()


def test_digit_sum_is_reproducible_from_the_seed():
    a = sample_batch(20, 8, np.random.default_rng(7))
    b = sample_batch(20, 8, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


# -- the book's datasets ------------------------------------------------------------------------

def _book_generate_data(length, k, save_path):
    """The NNDL book's generator (6.1.1), transcribed statement for statement (global numpy RNG)."""
    base_examples = []
    for n1 in range(0, 10):
        for n2 in range(0, 10):
            seq = [n1, n2] + [0] * (length - 2)
            label = n1 + n2
            base_examples.append((seq, label))
    examples = []
    for base_example in base_examples:
        for _ in range(k):
            idx = np.random.randint(2, length)
            val = np.random.randint(0, 10)
            seq = base_example[0].copy()
            label = base_example[1]
            seq[idx] = val
            examples.append((seq, label))
    with open(save_path, "w", encoding="utf-8") as f:
        for example in examples:
            f.write(" ".join(str(e) for e in example[0]) + "\t" + str(example[1]) + "\n")


def _book_files(root):
    import random

    random.seed(0)
    np.random.seed(0)
    for length in [5, 10, 15, 20, 25, 30, 35]:
        (root / str(length)).mkdir(parents=True)
        for split, k in (("train", 3), ("dev", 1), ("test", 1)):
            _book_generate_data(length, k, root / str(length) / f"{split}.txt")


def test_book_datasets_are_the_books_files_byte_for_byte(tmp_path):
    _book_files(tmp_path / "book")
    assert main(["data", "digit-sum", "--book", "--out", str(tmp_path / "ours")]) == 0
    for length in BOOK_LENGTHS:
        for split in ("train", "dev", "test"):
            ours = (tmp_path / "ours" / str(length) / f"{split}.txt").read_bytes()
            assert ours == (tmp_path / "book" / str(length) / f"{split}.txt").read_bytes(), (length, split)


def test_book_datasets_in_memory_match_what_is_read_back(tmp_path):
    data = book_datasets()
    assert [len(data[5][s][1]) for s in ("train", "dev", "test")] == [300, 100, 100]
    digits, labels = data[35]["train"]
    np.testing.assert_array_equal(labels, digits[:, 0] + digits[:, 1])
    np.testing.assert_array_equal(digits[::3, :2], [[a, b] for a in range(10) for b in range(10)])
    assert np.all((digits[:, 2:] != 0).sum(axis=1) <= 1)
    main(["data", "digit-sum", "--out", str(tmp_path)])
    back = read_datasets(tmp_path, 35)
    for split in ("train", "dev", "test"):
        for ours, read in zip(data[35][split], back[split]):
            np.testing.assert_array_equal(ours, read)


def test_other_seeds_lengths_and_sizes(tmp_path):
    assert main(["data", "digit-sum", "--lengths", "4,7", "--seed", "3", "--copies", "2,1,2", "--out", str(tmp_path)]) == 0
    back = read_datasets(tmp_path, 7)
    assert [len(back[s][1]) for s in ("train", "dev", "test")] == [200, 100, 200]
    assert not (tmp_path / "5").exists()
    want = book_datasets((4, 7), 3, {"train": 2, "dev": 1, "test": 2})[7]["dev"]
    np.testing.assert_array_equal(back["dev"][0], want[0])


@pytest.mark.parametrize("args, message", [
    (["--book", "--seed", "1"], "--book"),
    (["--lengths", "2,5"], "lengths >= 3"),
    (["--copies", "3,1"], "3 counts"),
])
def test_data_flags_are_checked(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:  # argparse exits itself; a UsageError returns 2
        raise SystemExit(main(["data", "digit-sum", "--out", str(tmp_path), *args]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_data_never_overwrites_unless_asked(tmp_path, capsys):
    assert main(["data", "digit-sum", "--lengths", "5", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "5" / "dev.txt").read_bytes()
    assert main(["data", "digit-sum", "--lengths", "5", "--seed", "9", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "5" / "dev.txt").read_bytes() == before
    assert main(["data", "digit-sum", "--lengths", "5", "--seed", "9", "--overwrite", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "5" / "dev.txt").read_bytes() != before


@pytest.mark.parametrize("text, message", [
    ("1 2 0\t3\n1 2\t3\n", "2 digits where"),
    ("1 2 0 3\n", "no tab"),
    ("1 2 x\t3\n", "not a digit-sum line"),
    ("1 2 0\t30\n", "label 0..18"),
])
def test_reading_rejects_malformed_lines(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_split(path)


def test_data_into_an_unwritable_place_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["data", "digit-sum", "--lengths", "5", "--out", str(tmp_path / "file" / "below")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write" in err and len(err.splitlines()) == 1


def test_training_sizes_in_hundreds_use_the_books_construction_and_others_draw_at_random():
    """--sizes 300,500,500 gives the book's balanced sets with 3, 5 and 5 copies of every digit pair
    (drawn in the book's order from the seed); sizes that are not multiples of 100 draw at random."""
    from gradlab.tasks import datasets

    got = datasets(TASK, 20, 0, {"train": 300, "dev": 500, "test": 500})
    want = book_datasets(BOOK_LENGTHS, 0, {"train": 3, "dev": 5, "test": 5})[20]
    for split in ("train", "dev", "test"):
        for a, b in zip(got[split], want[split]):
            np.testing.assert_array_equal(a, b)
    pairs = got["dev"][0][:, :2]
    assert all((pairs == [n1, n2]).all(axis=1).sum() == 5 for n1 in range(10) for n2 in range(10))
    odd = datasets(TASK, 20, 0, {"train": 30, "dev": 7, "test": 7})
    assert [len(odd[s][1]) for s in ("train", "dev", "test")] == [30, 7, 7]
