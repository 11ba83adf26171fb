import numpy as np
import pytest

from gradlab.tasks.digit_sum import NUM_CLASSES, sample_batch


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
