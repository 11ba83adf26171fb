"""stable_norm: float32 rows summed in float32 where that is exact, else in float64, so that the
norm of every float32 row is its float64 norm to float32 rounding (0 only for a zero row, inf only
for an inf entry), subnormal entries included."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradlab.engine.numerics import nonzero_steps, stable_norm

#: float32's rounding, summed over a row of 128 entries: well above it, a real discrepancy.
RTOL = 1e-6


def float64_norm(g: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(g.double(), dim=-1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-149, 127), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_rows_of_any_magnitude_match_float64(exponents, seed):
    """Rows whose entries lie at 2^e for mixed e (from subnormal to near float32's largest)."""
    gen = torch.Generator().manual_seed(seed)
    rows = [torch.randn(128, generator=gen) * 2.0 ** e for e in exponents]
    g = torch.stack([torch.where(r.abs() < 3.4e38, r, torch.zeros_like(r)) for r in rows]).float()
    np.testing.assert_allclose(stable_norm(g).numpy(), float64_norm(g).numpy(), rtol=RTOL, atol=0)


def test_mixed_rows_in_one_tensor_and_the_edges():
    g = torch.tensor([[1.0, 2.0, 2.0], [1e-30, 1e-40, 0.0], [0.0, 0.0, 0.0], [3e38, 3e38, 1e-30],
                      [1e20, 1e-40, 1.0], [1e-45, 0.0, 0.0]])
    np.testing.assert_allclose(stable_norm(g).numpy(), float64_norm(g).numpy(), rtol=RTOL, atol=0)
    assert stable_norm(torch.tensor([[float("inf"), 1.0], [float("nan"), 0.0]])).tolist() == [float("inf")] * 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 1e-45, -3.0, 1e30, float("inf"), float("-inf"), float("nan")]),
                min_size=6, max_size=6), st.integers(0, 5))
def test_nonzero_steps_is_any_entry_not_zero(values, T):
    """A step is active where any entry is not zero, NaN included (amax of |x| must not hide it)."""
    x = torch.zeros(max(T, 1), 2, 3)
    x[min(T, x.shape[0] - 1)] = torch.tensor(values).view(2, 3)
    want = torch.tensor([bool(np.any(step.numpy() != 0)) for step in x])  # NaN != 0 is True
    assert torch.equal(nonzero_steps(x), want)
    assert nonzero_steps(torch.zeros(3, 0)).tolist() == [False] * 3
