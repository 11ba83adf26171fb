"""From per-step norms to the numbers a reader wants: decay profile, decay factor, horizon.

Pure functions of NumPy arrays; nothing here touches a model. The distance of step t is
k = t_loss − t (0 at the step the loss reads; with the loss on every step, t_loss is the last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import stats

from gradlab.numerics import status_of

#: The default horizon: the distance at which the gradient has fallen by this factor.
HORIZON_DROP = 1e-6
#: Percentiles of the per-sample norms drawn as the band around the batch mean.
BAND_PERCENTILES = (10.0, 90.0)


@dataclass(frozen=True)
class DecayProfile:
    """Batch summary of per-sample norms against distance; every array is [K], K = t_loss + 1.

    distance: 0, 1, …, t_loss;  mean: batch mean of the per-sample norms;
    lo, hi: the BAND_PERCENTILES of the per-sample norms.
    """

    distance: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def status(self) -> np.ndarray:
        """[K] "ok", "underflow" (the mean is 0.0) or "overflow" (inf)."""
        return status_of(self.mean)


def decay_profile(norms: np.ndarray, loss_step: Optional[int] = None) -> DecayProfile:
    """norms: [T, B] per-sample norms, time in forward order → profile over distance 0..t_loss.

    loss_step defaults to the last step, T − 1.
    """
    norms = np.asarray(norms, dtype=np.float64)
    t_loss = norms.shape[0] - 1 if loss_step is None else loss_step
    if not 0 <= t_loss < norms.shape[0]:
        raise ValueError(f"loss_step {loss_step} outside 0..{norms.shape[0] - 1}")
    back = norms[t_loss::-1]  # row k is distance k
    with np.errstate(invalid="ignore"):  # percentiles of rows holding inf
        lo, hi = np.percentile(back, BAND_PERCENTILES, axis=1)
    return DecayProfile(np.arange(t_loss + 1), back.mean(axis=1), lo, hi)


@dataclass(frozen=True)
class DecayFit:
    """Least-squares line through log10(mean norm) against distance over ``first..last``.

    factor: the fitted per-step factor 10^slope (< 1 vanishing, > 1 exploding), or None with
    ``reason`` when too few distances hold a finite, non-zero mean.
    """

    factor: Optional[float]
    log10_per_step: Optional[float]
    first: Optional[int]
    last: Optional[int]
    r_squared: Optional[float]
    reason: str = ""


def fit_decay(profile: DecayProfile, start: int = 1, min_points: int = 3) -> DecayFit:
    """Fit the decay factor per step from distance ``start`` on, over the contiguous run of
    distances whose mean is finite and non-zero (an underflow or overflow ends the range)."""
    valid = np.isfinite(profile.mean) & (profile.mean > 0)
    end = start
    while end < len(valid) and valid[end]:
        end += 1
    if end - start < min_points:
        return DecayFit(None, None, None, None, None,
                        reason=f"fewer than {min_points} distances from {start} on with a finite, non-zero gradient")
    d = profile.distance[start:end]
    fit = stats.linregress(d, np.log10(profile.mean[start:end]))
    r2 = float(fit.rvalue**2) if np.isfinite(fit.rvalue) else 1.0  # a constant series fits exactly
    return DecayFit(float(10**fit.slope), float(fit.slope), int(d[0]), int(d[-1]), r2)


@dataclass(frozen=True)
class Horizon:
    """The first distance at which the mean norm is at most ``drop`` × its value at distance 0.

    distance is None when it is not reached within the sequence (``reason`` says how far it fell)
    or is undefined (the gradient at distance 0 is zero or infinite).
    """

    distance: Optional[int]
    drop: float
    reason: str


def horizon(profile: DecayProfile, drop: float = HORIZON_DROP) -> Horizon:
    ref = profile.mean[0]
    if not np.isfinite(ref) or ref == 0:
        word = "zero" if ref == 0 else "infinite"
        return Horizon(None, drop, f"undefined: the gradient at distance 0 is {word}")
    with np.errstate(invalid="ignore"):
        below = np.flatnonzero(profile.mean <= drop * ref)
    if below.size:
        return Horizon(int(below[0]), drop, "reached")
    if len(profile.mean) == 1:
        return Horizon(None, drop, "beyond the length: the sequence has a single step")
    finite = profile.mean[np.isfinite(profile.mean)]
    return Horizon(None, drop, f"beyond the length: within distances 0–{len(profile.mean) - 1} the smallest "
                               f"gradient is {finite.min() / ref:.3g} × its value at distance 0")
