"""From per-step norms to the numbers a reader wants: decay profile, decay factor, horizon.

Pure functions of NumPy arrays; nothing here touches a model. The distance of step t is
k = t_loss − t (0 at the step the loss reads; with the loss on every step, t_loss is the last).
Everything is computed from log10 norms, so it holds where the plain values are 0.0 or inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from gradlab.engine.numerics import status_of

#: The default horizon: the distance at which the gradient has fallen by this factor.
HORIZON_DROP = 1e-6
#: Percentiles of the per-sample norms drawn as the band around the batch mean.
BAND_PERCENTILES = (10.0, 90.0)
_LN10 = math.log(10)


@dataclass
class DecayProfile:
    """Batch summary of per-sample norms against distance; every array is [K], K = t_loss + 1.

    distance: 0, 1, …, t_loss
    mean: batch mean of the plain per-sample norms (0.0 or inf where the run's dtype under- or overflows)
    log10_mean: log10 of the batch mean of the true norms (exact, from the log-domain norms)
    log10_lo, log10_hi: the BAND_PERCENTILES of the per-sample log10 norms
    subnormal: True where some sample's plain norm lies below the run's normal range (0 < norm <
        the dtype's smallest normal number: its digits are partly lost), when that range was given
    """

    distance: np.ndarray
    mean: np.ndarray
    log10_mean: np.ndarray
    log10_lo: np.ndarray
    log10_hi: np.ndarray
    subnormal: Optional[np.ndarray] = None

    @cached_property
    def status(self) -> np.ndarray:
        """[K] "ok", "underflow" (the plain mean is 0.0), "overflow" (inf) or "subnormal" (some
        sample's plain norm has lost precision below the dtype's normal range)."""
        return status_of(self.mean, self.subnormal)


def log10_batch_mean(log10_norms: np.ndarray) -> np.ndarray:
    """[K, B] log10 values → [K] log10 of the mean of the values, without leaving log space."""
    with np.errstate(divide="ignore"):
        return (logsumexp(log10_norms * _LN10, axis=1) - math.log(log10_norms.shape[1])) / _LN10


def decay_profile(log10_norms: np.ndarray, plain_norms: Optional[np.ndarray] = None,
                  loss_step: Optional[int] = None, smallest_normal: Optional[float] = None) -> DecayProfile:
    """log10_norms, plain_norms: [T, B], time in forward order → profile over distance 0..t_loss.

    plain_norms defaults to 10^log10_norms in float64. loss_step defaults to the last step, T − 1.
    smallest_normal: the run dtype's (``trace.smallest_normal``); plain norms between 0 and it are
    marked ``subnormal``.
    """
    log10_norms = np.asarray(log10_norms, dtype=np.float64)
    if plain_norms is None:
        with np.errstate(over="ignore", under="ignore"):  # 0.0 and inf are what float64 holds
            plain_norms = 10.0 ** log10_norms
    plain = np.asarray(plain_norms, dtype=np.float64)
    t_loss = log10_norms.shape[0] - 1 if loss_step is None else loss_step
    if not 0 <= t_loss < log10_norms.shape[0]:
        raise ValueError(f"loss_step {loss_step} outside 0..{log10_norms.shape[0] - 1}")
    back, back_plain = log10_norms[t_loss::-1], plain[t_loss::-1]  # row k is distance k
    with np.errstate(invalid="ignore", over="ignore"):  # a plain mean may overflow to inf
        lo, hi = np.percentile(back, BAND_PERCENTILES, axis=1)
        mean = back_plain.mean(axis=1)
    subnormal = None if smallest_normal is None else ((back_plain > 0) & (back_plain < smallest_normal)).any(axis=1)
    return DecayProfile(np.arange(t_loss + 1), mean, log10_batch_mean(back), lo, hi, subnormal)


def distance_profile(log10_norms: np.ndarray, lengths: np.ndarray, direction: int = 0) -> DecayProfile:
    """log10_norms [T, B] of sequences of ``lengths`` [B] → the profile over distance from each
    sample's own last step: position len_b − 1 − k for the forward direction, k for the reverse one
    (which ends at position 0). At distance k the statistics are over the samples that have it.

    ``mean`` is 10^log10 in float64 (0.0 past float64's range; the log10 values stay exact).
    """
    log10_norms = np.ma.getdata(np.asarray(log10_norms, dtype=np.float64))
    lengths = np.asarray(lengths, dtype=int)
    K = int(lengths.max())
    back = np.full((K, len(lengths)), np.nan)  # row k is distance k; NaN where a sample has no such step
    for b, n in enumerate(lengths):
        own = log10_norms[:n, b]
        back[:n, b] = own[::-1] if direction == 0 else own
    present = ~np.isnan(back)
    with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
        lo, hi = np.nanpercentile(back, BAND_PERCENTILES, axis=1)
        plain = np.where(present, 10.0 ** np.where(present, back, 0.0), 0.0)
        counts = present.sum(axis=1)
        mean = plain.sum(axis=1) / counts
        log10_mean = (logsumexp(np.where(present, back, -np.inf) * _LN10, axis=1) - np.log(counts)) / _LN10
    return DecayProfile(np.arange(K), mean, log10_mean, lo, hi)


def decay_of(trace, name: str = "h", layer: int = -1, direction: int = 0) -> tuple[DecayProfile, DecayFit, "Horizon"]:
    """The decay of a recorded step of ``gradlab.watch`` (its distance sweep): (profile against the
    distance from each sample's own last step, fitted factor per step, horizon). In a stacked
    bidirectional model the top layer's profiles are clean; below it both directions' seeds (at the
    end and at position 0) reach every state."""
    profile = distance_profile(trace.distance_log10_grad_norms(name, layer, direction), trace.mask.sum(axis=0),
                               direction)
    return profile, fit_decay(profile), horizon(profile)


@dataclass(frozen=True)
class DecayFit:
    """Least-squares line through log10(batch mean) against distance over ``first..last``.

    factor: the fitted per-step factor 10^slope (< 1 vanishing, > 1 exploding), or None with
    ``reason`` when too few distances hold a non-zero gradient.
    """

    factor: Optional[float]
    log10_per_step: Optional[float]
    first: Optional[int]
    last: Optional[int]
    r_squared: Optional[float]
    reason: str = ""


def fit_decay(profile: DecayProfile, start: int = 1, min_points: int = 3) -> DecayFit:
    """Fit the decay factor per step from distance ``start`` on, over the contiguous run of
    distances whose gradient is non-zero (finite log10)."""
    valid = np.isfinite(profile.log10_mean)
    end = start
    while end < len(valid) and valid[end]:
        end += 1
    if end - start < min_points:
        return DecayFit(None, None, None, None, None,
                        reason=f"fewer than {min_points} distances from {start} on with a non-zero gradient")
    d = profile.distance[start:end]
    fit = stats.linregress(d, profile.log10_mean[start:end])
    r2 = float(fit.rvalue**2) if np.isfinite(fit.rvalue) else 1.0  # a constant series fits exactly
    return DecayFit(float(10.0 ** fit.slope), float(fit.slope), int(d[0]), int(d[-1]), r2)


@dataclass(frozen=True)
class Horizon:
    """The first distance at which the mean norm is at most ``drop`` × its value at distance 0.

    distance is None when it is not reached within the sequence (``reason`` says how far it fell)
    or is undefined (the gradient at distance 0 is zero).
    """

    distance: Optional[int]
    drop: float
    reason: str


def horizon(profile: DecayProfile, drop: float = HORIZON_DROP) -> Horizon:
    ref = profile.log10_mean[0]
    if not np.isfinite(ref):
        word = "zero" if ref < 0 else "infinite"
        return Horizon(None, drop, f"undefined: the gradient at distance 0 is {word}")
    below = np.flatnonzero(profile.log10_mean <= ref + math.log10(drop))
    if below.size:
        return Horizon(int(below[0]), drop, "reached")
    if len(profile.log10_mean) == 1:
        return Horizon(None, drop, "beyond the length: the sequence has a single step")
    fell = float(np.min(profile.log10_mean) - ref)
    return Horizon(None, drop, f"beyond the length: within distances 0–{len(profile.log10_mean) - 1} the smallest "
                               f"gradient is 10^{fell:.3g} × its value at distance 0")
