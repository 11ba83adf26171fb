"""Carrying an adjoint past floating-point range: a unit-size carry and a separate log scale.

The gradient carried backwards shrinks or grows geometrically, so after enough steps its plain
value is 0.0 or inf. Here the carry is kept with its largest entry at magnitude 1 per sample, and
its size is accumulated as a natural-log scale λ in float64 (docs/derivations.md, eq. LOG-carry):

    true carry of sample b = exp(λ_b) · ĉ_b,   max |ĉ_b| = 1 (or ĉ_b = 0).

The explicit gradient ∂⁺L/∂h_t arrives in the same form (ê_t, ℓ_t) and is merged with the
log-sum-exp trick, m = max(λ, ℓ_t):  ĉ ← ĉ·e^{λ−m} + ê_t·e^{ℓ_t−m},  λ ← m; every exponent is ≤ 0,
so nothing overflows and an underflow only drops a term that is negligible beside the other.

The carry is rescaled by powers of two (eq. LOG-carry with λ a multiple of ln 2), which changes no
digit of it: so between merges the sweep may run a block of steps without rescaling and rescale at
the block's end, with the same values as rescaling every step, as long as every row stayed within
[2⁻⁶⁰, 2⁶⁰] of its scale; a block that left that range is run again step by step (LogScale.spans).
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import torch

from gradlab.engine.numerics import nonzero_steps, stable_norm
from gradlab.models.architectures.base import ENTERED, FINAL, QUIET

#: log of an exact zero. A finite stand-in for −inf keeps λ − m well defined (never −inf − (−inf)).
LOG_ZERO = -1e300
#: Steps a log-domain sweep runs between rescalings of its carry where nothing is merged into it.
BLOCK = 16
#: A block is kept when the largest magnitude of every row it stored lies in [LOW, HIGH] (or is 0):
#: far from float32's range (2⁻¹²⁶ … 2¹²⁸), so that no entry within 2⁻⁶⁶ of its row's largest is lost.
LOW, HIGH = 2.0 ** -60, 2.0 ** 60
LN2 = math.log(2.0)


def split_log(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [..., D] → (x̂ with max |x̂| = 1 per row (0 rows stay 0), log max |x| [...] in float64)."""
    m = x.abs().amax(dim=-1)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    log = torch.where(m > 0, safe.to(torch.float64).log(), torch.full_like(m, LOG_ZERO, dtype=torch.float64))
    return x / safe.unsqueeze(-1), log


def log10_norm(x_hat: torch.Tensor, log: torch.Tensor) -> torch.Tensor:
    """log10 ‖exp(log) · x̂‖ over the last dim, in float64: −inf only where x̂ is exactly zero."""
    return log10_from(stable_norm(x_hat), log)


def log10_from(norm: torch.Tensor, log: torch.Tensor) -> torch.Tensor:
    """log10 (exp(log) · norm) = (log + ln norm) / ln 10 in float64, from ‖x̂‖ [...] and its log scale [...]
    (eq. LOG-carry: the norm of e^λ·x̂)."""
    return (log + norm.log()) / math.log(10)


def to_plain(x_hat: torch.Tensor, log: torch.Tensor) -> torch.Tensor:
    """exp(log) · x̂ in x̂'s dtype: inf where that overflows, 0.0 where it falls below the dtype's
    normal range (under 1.2e-38 in float32: subnormal values, imprecise and, on x86 CPUs, two orders
    of magnitude slower in every product that follows, read as underflow)."""
    scale = log.exp().to(x_hat.dtype)  # exp(LOG_ZERO) is exactly 0.0
    plain = x_hat * scale.unsqueeze(-1)
    if bool(torch.isinf(scale).any()):  # never 0 · inf = NaN: an exact zero stays zero
        plain = torch.where(x_hat == 0, torch.zeros_like(plain), plain)
    return plain.masked_fill_(plain.abs() < torch.finfo(x_hat.dtype).tiny, 0.0)


class PlainScale:
    """The plain sweep's side of the interface LogScale offers: the explicit gradient is added as it
    is and nothing is rescaled. explicit: [T, B, H].

    final: optionally (at [B], parts): the gradient on each sample's final state, one [B, H] per
    carry (h, and c), added to the carries as the sweep enters step at[b] (each sample's own last step).
    """

    def __init__(self, explicit: torch.Tensor, final: Optional[tuple] = None) -> None:
        self.explicit = explicit
        self.final = final
        self.final_steps = set() if final is None else set(final[0].tolist())

    def enter(self, t: int, carry: torch.Tensor, others: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        """Write the total δh_t = ∂⁺L/∂h_t + carry into ``out``."""
        if t in self.final_steps:
            at, parts = self.final
            here = (at == t).unsqueeze(-1).to(carry.dtype)
            for c, part in zip((carry, *others), parts):
                c.addcmul_(part, here)
        torch.add(self.explicit[t], carry, out=out)

    def track(self, *outputs: torch.Tensor) -> None:
        """Nothing to check: plain values are carried as they are."""

    def spans(self, T: int, carries: tuple[torch.Tensor, ...],
              compiled: bool = False) -> Iterator[tuple[int, int, str]]:
        """The steps of the sweep, T−1 down to 0, as (hi, lo, kind): a run of steps hi … lo where
        the explicit gradient is exactly zero and no final state enters (QUIET: δh_t = carry), a run
        where it is not zero in any (ENTERED), or one step where a final state enters (FINAL); the
        same for compiled steps (a quiet run reads no explicit gradient there)."""
        adds = nonzero_steps(self.explicit).tolist()  # one sync
        yield from runs(T, adds, self.final_steps)

    def renormalize(self, *carries: torch.Tensor) -> None:
        """Nothing to do: plain values are carried as they are."""

    def entry(self) -> tuple[torch.Tensor, None, None, None]:
        """What :meth:`enter` reads, for a compiled ENTERED span: the explicit gradient [T, B, H]."""
        return self.explicit, None, None, None


def runs(T: int, adds: list[bool], final_steps: set[int]) -> Iterator[tuple[int, int, str]]:
    """Steps T−1 down to 0 in maximal runs of one kind: FINAL (a step in ``final_steps``, alone),
    ENTERED (steps where ``adds``), QUIET (the rest)."""
    hi = T - 1
    while hi >= 0:
        if hi in final_steps:
            yield hi, hi, FINAL
            hi -= 1
            continue
        lo = hi
        while lo > 0 and adds[lo - 1] == adds[hi] and lo - 1 not in final_steps:
            lo -= 1
        yield hi, lo, ENTERED if adds[hi] else QUIET
        hi = lo - 1


class LogScale:
    """The per-sample log scale of one layer's backward sweep, and the explicit gradients in log form.

    explicit_hat: [T, B, H], explicit_log: [T, B] — ∂⁺L/∂h_t = exp(explicit_log) · explicit_hat.
    start: [B] the log scale of the carry entering the sweep (of grad_state, or LOG_ZERO).
    final: optionally (at [B], unit-size parts, log [B]): the gradient on each sample's final state,
    merged into the carries (h, and c) as the sweep enters step at[b].
    After the sweep, ``steps[t]`` is the log scale of the stored dh[t], dc[t], dz[t].
    """

    def __init__(self, explicit_hat: torch.Tensor, explicit_log: torch.Tensor, start: torch.Tensor,
                 final: Optional[tuple] = None, block: Optional[int] = None) -> None:
        self.explicit_hat, self.explicit_log = split_log_rows(explicit_hat, explicit_log)
        self.explicit = self.explicit_hat  # [T, B, H], the shape and dtype the sweep works in
        self.has_explicit = (self.explicit_log > LOG_ZERO / 2).any(dim=1).tolist()  # one sync
        self.log = start.clone()
        self.steps = torch.empty_like(explicit_log)
        self.final = final
        self.final_steps = set() if final is None else set(final[0].tolist())
        self.block = BLOCK if block is None else block  # steps per block; 1: rescale every step
        self.tracked: tuple[torch.Tensor, ...] = ()
        self._zero: Optional[torch.Tensor] = None  # [B], see _in_range

    def track(self, *outputs: torch.Tensor) -> None:
        """The sweep's per-step outputs ([T, B, ·], e.g. δh and δc) whose rows a block's range check reads."""
        self.tracked = outputs

    def spans(self, T: int, carries: tuple[torch.Tensor, ...],
              compiled: bool = False) -> Iterator[tuple[int, int, str]]:
        """The steps of the sweep, T−1 down to 0, as (hi, lo, kind). A run of steps that merge an
        explicit gradient is one ENTERED span, each step entered and rescaled; a step where a final
        state enters is FINAL, alone. The other steps, in runs of at most ``block`` between those,
        are QUIET spans: the caller runs one with δh_t = carry and neither :meth:`enter` nor
        :meth:`renormalize` (its λ is the span's); then the carries are rescaled once. A quiet span
        whose rows left [LOW, HIGH] is run again from the ``carries`` it entered with, as an
        ENTERED span (every step rescaled; entering one adds nothing to the carry).

        compiled: every step between the FINAL ones is entered and rescaled, in one ENTERED span:
        the compiled steps rescale in the same pass over the carries that forms them, which cost
        less than the blocks' range checks and restarts (LSTM B 32 H 128 T 1000, record(): 237 ms
        rescaled at every step against 288 ms in blocks, AMD EPYC, before the steps ran in
        parallel), and entering a zero explicit gradient leaves the carry exactly as it is."""
        if compiled:
            yield from runs(T, [True] * T, self.final_steps)
            return
        for hi, lo, kind in runs(T, self.has_explicit, self.final_steps):
            if kind != QUIET or self.block == 1:
                yield hi, lo, ENTERED if kind == QUIET else kind
                continue
            for top in range(hi, lo - 1, -self.block):
                bottom = max(lo, top + 1 - self.block)
                if bottom == top:  # one step: rescaled after it, nothing to check
                    yield top, top, ENTERED
                    continue
                saved, log = tuple(c.clone() for c in carries), self.log.clone()
                self._zero = joint_max(carries) == 0  # [B] samples whose carry is exactly 0 and stays so
                yield top, bottom, QUIET
                if self._in_range(bottom, top):
                    self.steps[bottom:top + 1] = self.log
                    self.renormalize(*carries)
                    continue
                for c, s in zip(carries, saved):
                    c.copy_(s)
                self.log = log
                yield top, bottom, ENTERED

    def enter(self, t: int, carry: torch.Tensor, others: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        """Write the total δh_t (carry plus explicit, on a common scale) into ``out``; rescale ``others``."""
        if t in self.final_steps:  # log-sum-exp of the carries and the final-state gradient, per sample
            at, parts, final_log = self.final
            enters = torch.where(at == t, final_log, torch.full_like(final_log, LOG_ZERO))
            m = torch.maximum(self.log, enters)
            a = (self.log - m).exp().to(carry.dtype).unsqueeze(-1)
            b = (enters - m).exp().to(carry.dtype).unsqueeze(-1)
            for c, part in zip((carry, *others), parts):
                c.mul_(a).addcmul_(part, b)
            self.log = m
        if self.has_explicit[t]:
            m = torch.maximum(self.log, self.explicit_log[t])
            a = (self.log - m).exp().to(carry.dtype).unsqueeze(-1)
            b = (self.explicit_log[t] - m).exp().to(carry.dtype).unsqueeze(-1)
            torch.addcmul(carry * a, self.explicit_hat[t], b, out=out)
            for other in others:
                other.mul_(a)
            self.log = m
        else:
            out.copy_(carry)
        self.steps[t] = self.log

    def renormalize(self, *carries: torch.Tensor) -> None:
        """Rescale the carries in place by a power of two per sample, 2^−e with e the exponent of
        their joint largest magnitude (which then lies in [0.5, 1)), and add e·ln 2 to λ. A sample
        whose carries are all exactly zero gets λ = LOG_ZERO, so that an explicit gradient merged
        later keeps its own scale, however small beside the carry's last one."""
        m = joint_max(carries)
        zero = m == 0
        mantissa, exponent = torch.frexp(m.clamp_min_(torch.finfo(m.dtype).tiny))  # m = mantissa · 2^exponent
        power = (mantissa / m).unsqueeze(-1)  # exactly 2^−exponent
        for c in carries:
            c.mul_(power)
        self.log = (self.log + exponent.to(torch.float64) * LN2).masked_fill_(zero, LOG_ZERO)

    def entry(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What :meth:`enter` reads and writes, for a compiled ENTERED span: ê [T, B, H], ℓ [T, B],
        λ [B] (updated in place) and the per-step scales [T, B] (written)."""
        return self.explicit_hat, self.explicit_log, self.log, self.steps

    def _in_range(self, lo: int, hi: int) -> bool:
        """Whether every row the block stored has its largest magnitude in [LOW, HIGH], or is 0 for a
        sample whose carry entered the block as exactly 0 (a row that fell to 0 may have underflowed):
        one sync."""
        r = joint_max(tuple(out[lo:hi + 1] for out in self.tracked))  # [steps, B]
        bad = (r > HIGH) | ((r < LOW) & ~((r == 0) & self._zero))
        return not bool(bad.any())


def joint_max(parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The largest magnitude over the last dim of every part, jointly: [..., D_i] → [...]."""
    m = parts[0].abs().amax(dim=-1)  # 7 µs on [32, 128]; vector_norm(inf) measured 24 µs
    for p in parts[1:]:
        m = torch.maximum(m, p.abs().amax(dim=-1))
    return m


def add_logs(a_hat: torch.Tensor, a_log: torch.Tensor, b_hat: torch.Tensor,
             b_log: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(a_log)·â + exp(b_log)·b̂ in the same form, without leaving the log domain (m = max(a, b)):
    (â·e^{a−m} + b̂·e^{b−m}, m), renormalised row by row. â, b̂: [..., D]; logs: [...]."""
    m = torch.maximum(a_log, b_log)
    scale = lambda log: (log - m).exp().to(a_hat.dtype).unsqueeze(-1)  # noqa: E731  every exponent <= 0
    return split_log_rows(a_hat * scale(a_log) + b_hat * scale(b_log), m)


def split_log_rows(x_hat: torch.Tensor, log: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Renormalise (x̂, log) so that every row of x̂ has max magnitude 1 (the inputs need not)."""
    hat, extra = split_log(x_hat)
    return hat, torch.where(extra > LOG_ZERO / 2, log + extra, torch.full_like(log, LOG_ZERO))
