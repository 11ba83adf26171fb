"""The compiled steps' recurrent product (gradlab/models/architectures/product.h), c = d + a · b, against
the exact value: each kernel (AVX-512 and AVX2 where this CPU has them, else skipped; at::mm) is within the
rounding-error bound of any order of summation, γ_K (|d| + |a| |b|) with γ_K = K u / (1 − K u), u = 2⁻²⁴
in float32 and 2⁻⁵³ in float64 (always at::mm). The shapes cover the register tiles' edges: row counts
around their 4 and 8 rows, column counts around their 16-column panels, and the sizes the sweeps use."""

import shutil

import numpy as np
import pytest
import torch

from gradlab.models.architectures import compiled

pytestmark = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
UNIT = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
#: gradlab_steps::Kernel's values
KERNELS = {"best": 0, "avx512": 1, "avx2": 2, "mm": 3}
CASES = [(torch.float32, "avx512"), (torch.float32, "avx2"), (torch.float32, "mm"), (torch.float64, "best")]


def product(a, b, d=None, in_place=False, kernel="best"):
    """c = d + a·b by the kernel named, skipping the test where this CPU lacks it."""
    ops = compiled.kernels(a)
    if ops.product_kernel(b, KERNELS[kernel]) != KERNELS[kernel] and kernel != "best":
        pytest.skip(f"this CPU lacks the {kernel} kernel")
    return ops.product(a, b, d, in_place, KERNELS[kernel])


def exact_and_bound(a, b, d, dtype):
    """d + a·b in numpy's long double (x86: a 64-bit mantissa), and the bound on each entry's error: the
    kernel's γ_K (|d| + |a| |b|) in ``dtype``'s unit, plus the reference's own in long double's."""
    K = a.shape[1]
    gamma = lambda u: K * u / (1 - K * u)  # noqa: E731
    a_, b_ = a.numpy().astype(np.longdouble), b.numpy().astype(np.longdouble)
    d_ = np.zeros((), dtype=np.longdouble) if d is None else d.numpy().astype(np.longdouble)
    size = np.abs(d_) + np.abs(a_) @ np.abs(b_)
    return d_ + a_ @ b_, (gamma(UNIT[dtype]) + gamma(float(np.finfo(np.longdouble).eps) / 2)) * size


@pytest.mark.parametrize("dtype,kernel", CASES, ids=[f"{str(d)[6:]}-{k}" for d, k in CASES])
@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 32])
@pytest.mark.parametrize("K,N", [(5, 20), (128, 512), (512, 128), (128, 384), (7, 1), (16, 15), (16, 17), (3, 48)])
@pytest.mark.parametrize("addend", ["none", "rows", "bias", "in place"])
def test_every_entry_within_the_summation_error_bound(dtype, kernel, n, K, N, addend):
    gen = torch.Generator().manual_seed(n * 1000 + K + N)
    a = torch.randn(n, K, generator=gen, dtype=dtype)
    b = torch.randn(K, N, generator=gen, dtype=dtype)
    d = {"none": None, "bias": torch.randn(N, generator=gen, dtype=dtype)}.get(
        addend, torch.randn(n, N, generator=gen, dtype=dtype))
    c = product(a, b, d, addend == "in place", kernel)
    assert c.shape == (n, N) and c.dtype == dtype
    exact, bound = exact_and_bound(a, b, d, dtype)
    err = np.abs(c.numpy().astype(np.longdouble) - exact)
    assert (err <= bound).all(), f"{int((err > bound).sum())} entries beyond the bound, worst by {float((err / bound).max()):.3g}×"


@pytest.mark.parametrize("kernel", ["avx512", "avx2"])
def test_a_row_is_the_same_whichever_rows_come_with_it(kernel):
    """The sweeps split the batch into slices, one per thread: each row's value must not depend on the slice."""
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(32, 128, generator=gen), torch.randn(128, 512, generator=gen)
    whole = product(a, b, kernel=kernel)
    for lo, hi in ((0, 16), (16, 32), (3, 4), (5, 18)):
        assert torch.equal(product(a[lo:hi], b, kernel=kernel), whole[lo:hi])


@pytest.mark.parametrize("addend", [False, True])
def test_the_two_packed_kernels_give_the_same_values(addend):
    """Both sum each entry in k order with fused multiply-adds from d: 8 or 16 lanes wide, the same bits."""
    gen = torch.Generator().manual_seed(7)
    a, b, d = (torch.randn(19, 200, generator=gen), torch.randn(200, 37, generator=gen),
               torch.randn(19, 37, generator=gen))
    d = d if addend else None
    assert torch.equal(product(a, b, d, kernel="avx512"), product(a, b, d, kernel="avx2"))


@pytest.mark.parametrize("kernel", ["best", "avx2"])
@pytest.mark.parametrize("K,N", [(128, 512), (7, 1), (1, 7), (16, 17), (5, 20)])
def test_the_weight_may_be_a_transposed_view(K, N, kernel):
    """The forward steps hand W_hhᵀ, a view of W_hh [G·H, H], which is laid out from W_hh's rows."""
    gen = torch.Generator().manual_seed(6)
    a, w = torch.randn(16, K, generator=gen), torch.randn(N, K, generator=gen)
    assert torch.equal(product(a, w.t(), kernel=kernel), product(a, w.t().contiguous(), kernel=kernel))
    exact, bound = exact_and_bound(a, w.t(), None, torch.float32)
    assert (np.abs(product(a, w.t(), kernel=kernel).numpy().astype(np.longdouble) - exact) <= bound).all()
