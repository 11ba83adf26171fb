"""The compiled forward's nonlinearities (gradlab/models/architectures/activations.h) against 40-digit
references (mpmath): e^x, e^x − 1, σ and tanh within 4 units in the last place of float32 and
float64 over their working ranges, where the results under- and overflow, and at ±inf, NaN and 0."""

import shutil

import mpmath
import numpy as np
import pytest
import torch

from gradlab.models.architectures import compiled

pytestmark = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
KINDS = {"exp": (0, mpmath.exp), "expm1": (1, mpmath.expm1), "sigmoid": (2, lambda v: 1 / (1 + mpmath.exp(-v))),
         "tanh": (3, mpmath.tanh)}
#: where each is tested: its working range, wide enough to reach under- and overflow
RANGES = {torch.float32: {"exp": (-110, 95), "expm1": (-5, 5), "sigmoid": (-110, 110), "tanh": (-25, 25)},
          torch.float64: {"exp": (-750, 715), "expm1": (-5, 5), "sigmoid": (-750, 750), "tanh": (-25, 25)}}


def apply(name: str, x: torch.Tensor) -> torch.Tensor:
    return compiled.kernels(x).activation(x, KINDS[name][0])


def reference(name: str, x: torch.Tensor) -> np.ndarray:
    """The exact value, rounded once to the tensor's dtype (numpy rounds the mpmath value)."""
    mpmath.mp.dps = 40
    f = KINDS[name][1]
    exact = [f(mpmath.mpf(float(v))) for v in x.double().tolist()]
    dtype = np.float32 if x.dtype == torch.float32 else np.float64
    with np.errstate(over="ignore"):  # past the dtype's largest value: inf
        return np.array([dtype(mpmath.nstr(v, 30)) if mpmath.isfinite(v) else dtype(float(v)) for v in exact])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(KINDS))
def test_within_four_ulp_of_the_exact_value(name, dtype):
    lo, hi = RANGES[dtype][name]
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([lo + (hi - lo) * torch.rand(3000, generator=gen, dtype=torch.float64),
                   1e-3 * (2 * torch.rand(300, generator=gen, dtype=torch.float64) - 1),  # small arguments
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30])]).to(dtype)
    got, want = apply(name, x).numpy(), reference(name, x)
    finfo = np.finfo(got.dtype)
    if name == "sigmoid":  # 1 / (1 + e^{−x}) is 0 where e^{−x} overflows, as torch's own σ: the exact value is subnormal
        flushed = (got == 0) & (want < finfo.tiny)
        got, want = got[~flushed], want[~flushed]
    same_class = (np.isinf(got) == np.isinf(want)) & ((got == 0) == (want == 0))
    assert same_class.all(), (got[~same_class], want[~same_class])  # over- and underflow where the exact value does
    normal = np.isfinite(want) & (np.abs(want) >= finfo.tiny)
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(np.abs(want[normal]))
    assert ulps.max() <= 4, (name, float(ulps.max()))
    subnormal = np.isfinite(want) & (want != 0) & ~normal  # gradual underflow: within 4 of the smallest step
    assert (np.abs(got[subnormal] - want[subnormal]) <= 4 * np.spacing(finfo.dtype.type(0))).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_infinities_nan_and_zero(dtype):
    x = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0], dtype=dtype)
    want = {"exp": [float("inf"), 0.0, float("nan"), 1.0], "expm1": [float("inf"), -1.0, float("nan"), 0.0],
            "sigmoid": [1.0, 0.0, float("nan"), 0.5], "tanh": [1.0, -1.0, float("nan"), 0.0]}
    for name, values in want.items():
        torch.testing.assert_close(apply(name, x), torch.tensor(values, dtype=dtype), rtol=0, atol=0, equal_nan=True,
                                   msg=name)
