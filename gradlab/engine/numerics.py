"""Norms that survive tiny and huge values, and the words for numerical trouble.

A gradient of 1e-30 in float32 has squares of 1e-60, which underflow: ``torch.linalg.norm`` then
returns 0 although the vector is not zero. :func:`stable_norm` scales by the largest entry first
and works in float64, so a norm is 0.0 only if every entry is 0.0, and inf only if an entry is
inf (or NaN, which in a backward pass comes from inf·0 or inf − inf, i.e. from an overflow).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

OK, UNDERFLOW, OVERFLOW, SUBNORMAL = "ok", "underflow", "overflow", "subnormal"


#: A float32 L2 norm of at least this lost nothing to underflowing squares: those are below 2⁻¹²⁶
#: each, under 2⁻²⁶ of the sum for up to 2²⁰ entries.
FLOAT32_NORM_EXACT_FROM = 2.0 ** -40


def _float32_norm(g: torch.Tensor, dim: int) -> torch.Tensor:
    """stable_norm's float32 case: summed in float32 when that is exact to its rounding for every row
    (a finite norm ≥ FLOAT32_NORM_EXACT_FROM), else the whole tensor squared in float64. (Rescaling
    the small rows by powers of two measured no faster than the float64 pass, and cannot lean on
    flushed subnormals: torch's flush setting holds for the calling thread only, not its workers.)"""
    norm = torch.linalg.vector_norm(g, dim=dim).to(torch.float64)
    doubtful = (norm < FLOAT32_NORM_EXACT_FROM) | torch.isinf(norm)  # 0 too: tiny squares may have underflowed
    if not bool(doubtful.any()):
        return norm
    return torch.linalg.vector_norm(g, dim=dim, dtype=torch.float64)  # squared in float64, no float64 copy


def nonzero_steps(x: torch.Tensor) -> torch.Tensor:
    """[T] bool: the steps where some entry of x [T, ...] is not zero (a NaN counts as not zero).
    The largest magnitude of each step, compared with 0: one reduction, 0.06 against 0.29 ms for
    ``ne(0).any`` on [100, 32, 128] (2.6 against 0.7 ms at T = 1000; AMD EPYC, 2 threads)."""
    if x[0].numel() == 0:
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    return x.flatten(1).abs().amax(dim=1).ne(0)


def stable_norm(g: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """L2 norm over ``dim`` in float64, exact in range. g: [..., H] → [...].

    float32 values are summed in float32 where that is exact to float32 rounding (:func:`_float32_norm`;
    0.5–0.8 ms against 1.9–5.3 ms squaring in float64 on [1000, 32, 128], Intel Xeon, 2 threads).
    Narrower dtypes are squared in float64, where no square of theirs can underflow or overflow;
    float64 values are scaled by their largest magnitude first, ``max|g| · ‖g / max|g|‖``.
    Entries that are inf or NaN give inf (overflow), never NaN.
    """
    g = g.detach()
    if g.dtype == torch.float32:
        norm = _float32_norm(g, dim)
    elif g.dtype != torch.float64:
        norm = torch.linalg.vector_norm(g, dim=dim, dtype=torch.float64)  # squared in float64, no float64 copy
    else:
        scale = g.abs().amax(dim=dim, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        norm = (scale * torch.linalg.vector_norm(g / scale, dim=dim, keepdim=True)).squeeze(dim)
    return torch.nan_to_num(norm, nan=float("inf"), posinf=float("inf"))


def status_of(values: np.ndarray, subnormal: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-value status of non-negative magnitudes: "underflow" (0.0), "overflow" (inf),
    "subnormal" where ``subnormal`` marks a value computed from numbers below the dtype's normal
    range (precision lost: up to tenths of a decade), or "ok"."""
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, OK, dtype=object)
    if subnormal is not None:
        out[np.asarray(subnormal, dtype=bool)] = SUBNORMAL
    out[values == 0.0] = UNDERFLOW
    out[~np.isfinite(values)] = OVERFLOW
    return out
