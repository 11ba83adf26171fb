"""Long short-term memory: eqs. (LSTM-gates), (LSTM-cell), (LSTM-hidden), the backward recurrences
(LSTM-back-*) and the one-step Jacobian (JAC-LSTM), docs/derivations.md. Gate order i, f, g, o.

With a projection (torch's ``proj_size`` P > 0, eq. LSTM-proj) the hidden state is
h_t = m_t W_hrᵀ with m_t = o ⊙ tanh(c_t) and ``weight_hr`` [P, H]: h is [B, P], c stays [B, H], and
W_hh is [4H, P]. Every method takes ``weight_hr=None`` (no projection: h_t = m_t).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from gradlab.models.architectures.base import (Architecture, CarryScale, InputGrad, Projections, RowNorms,
                                               StateHook, SweepGrads, TakeProjections, diag_times, no_hook,
                                               run_spans, stack_states)
from gradlab.models.architectures.compiled import kernels


def lstm_gates(x_proj: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: Optional[torch.Tensor],
               out: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (LSTM-gates): z = x_proj + h_{t−1} W_hhᵀ + b_hh split as (i, f, g, o);
    i, f, o = σ(·), g = tanh(·).

    x_proj: [B, 4H]; h: [B, P]; weight_hh: [4H, P] (P = H without a projection); out: optional [B, 4H] receiving
    the gates in place (it may be x_proj itself; the caller has then added b_hh to x_proj). Returns (i, f, g, o),
    each [B, H].
    """
    if out is None:
        zi, zf, zg, zo = (x_proj + F.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)
        return torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
    torch.addmm(x_proj, h, weight_hh.T, out=out)
    i, f, g, o = out.chunk(4, dim=-1)
    g_act = g.clone().tanh_()  # a copy (never g itself): tanh of a strided view runs about 4x slower
    out.sigmoid_()  # i, f, o, and g's block, overwritten next: one contiguous pass
    g.copy_(g_act)
    return i, f, g, o


def lstm_cell(i: torch.Tensor, f: torch.Tensor, g: torch.Tensor, c: torch.Tensor,
              out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (LSTM-cell): c_t = f ⊙ c_{t−1} + i ⊙ g. All [B, H]."""
    if out is None:
        return f * c + i * g
    return torch.mul(f, c, out=out).addcmul_(i, g)


def lstm_hidden(c: torch.Tensor, o: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eq. (LSTM-hidden): h_t = o ⊙ tanh(c_t). c, o: [B, H]; returns [B, H]."""
    if out is None:
        return o * torch.tanh(c)
    return torch.tanh(c, out=out).mul_(o)


@dataclass
class LSTMTape:
    h: torch.Tensor  # [T+1, B, H], h[0] = h_0
    c: torch.Tensor  # [T+1, B, H], c[0] = c_0
    gates: torch.Tensor  # [T, B, 4H], the activated gates i, f, g, o

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        return self.h[-1], self.c[-1]


#: Steps whose local derivatives the backward sweep forms at once (see LSTM.backward_sweep).
DERIVATIVE_CHUNK = 256


@dataclass
class LSTMDerivatives:
    """The local derivatives of one step, for every step (each [T, B, H] unless said):

    ifg: [T, B, 3, H] ∂c_t/∂z^{i,f,g} = (g ⊙ i(1−i), c_{t−1} ⊙ f(1−f), i ⊙ (1−g²))
    o:   ∂h_t/∂z^o = tanh c_t ⊙ o(1−o)
    c:   ∂h_t/∂c_t = o ⊙ (1 − tanh² c_t)
    f:   ∂c_t/∂c_{t−1} = f
    """

    ifg: torch.Tensor
    o: torch.Tensor
    c: torch.Tensor
    f: torch.Tensor


#: Steps whose local derivatives are formed at once where only the steps a final state enters need
#: them (the compiled steps form their own): one log-domain block.
MERGING_CHUNK = 16


class _Chunks:
    """The local derivatives an eager backward sweep reads, a chunk of steps at a time (the sweep runs
    downwards, so each chunk is formed once): ``derivatives(t)`` gives those of the ``size`` steps
    ending at step t, with its first step t0."""

    def __init__(self, arch: "LSTMArchitecture", tape: LSTMTape, size: int) -> None:
        self.arch, self.tape, self.size = arch, tape, size
        self._d: Optional[tuple[LSTMDerivatives, int, int]] = None

    def derivatives(self, t: int) -> tuple[LSTMDerivatives, int]:
        if self._d is None or not self._d[1] <= t < self._d[2]:
            t0, t1, tape = max(0, t + 1 - self.size), t + 1, self.tape
            self._d = (self.arch.local_derivatives(LSTMTape(tape.h[t0:t1 + 1], tape.c[t0:t1 + 1], tape.gates[t0:t1])),
                       t0, t1)
        return self._d[0], self._d[1]


class LSTMArchitecture(Architecture):
    name = "lstm"
    label = "LSTM"
    gates = ("i", "f", "g", "o")
    state_names = ("h", "c")
    forget_gate = 1

    def step(self, x_proj, state, weight_hh, bias_hh, hook: StateHook = no_hook, weight_hr=None):
        h, c = state
        i, f, g, o = lstm_gates(x_proj, h, weight_hh, bias_hh)
        c = hook("c", lstm_cell(i, f, g, c))  # c_t before h_t = o ⊙ tanh(c_t) reads it
        m = lstm_hidden(c, o)
        return hook("h", m if weight_hr is None else F.linear(m, weight_hr)), c  # eq. (LSTM-proj)

    def forward_sweep(self, x_proj, state, weight_hh, bias_hh, weight_hr=None) -> LSTMTape:
        """All steps, keeping h_t, c_t and the gates. x_proj: [T, B, 4H]; state: (h_0 [B, P], c_0 [B, H]).
        Compiled (forward_steps.cpp) where available and without a projection, else step by step."""
        T = x_proj.shape[0]
        h, c = stack_states(state[0], T), stack_states(state[1], T)
        compiled = kernels(x_proj) if weight_hr is None else None
        if compiled is not None:  # the gates formed in x_proj's buffer, with b_hh added once for all steps
            gates = x_proj.contiguous() if bias_hh is None else x_proj.add_(bias_hh).contiguous()
            compiled.lstm_forward(gates, h, c, weight_hh.contiguous())
            return LSTMTape(h, c, gates)
        x_proj = x_proj if bias_hh is None else x_proj + bias_hh  # b_hh added once for all steps
        gates = torch.empty_like(x_proj)
        m = None if weight_hr is None else c.new_empty(c.shape[1:])
        for t in range(T):
            i, f, g, o = lstm_gates(x_proj[t], h[t], weight_hh, None, out=gates[t])
            lstm_cell(i, f, g, c[t], out=c[t + 1])
            if weight_hr is None:
                lstm_hidden(c[t + 1], o, out=h[t + 1])
            else:  # eq. (LSTM-proj)
                torch.mm(lstm_hidden(c[t + 1], o, out=m), weight_hr.T, out=h[t + 1])
        return LSTMTape(h, c, gates)

    def tape_from_states(self, x_proj, h, state, weight_hh, bias_hh, weight_hr=None) -> LSTMTape:
        """Eq. (LSTM-gates) for all steps at once from h_{t−1} = h[:-1] (P wide when projected), then
        eq. (LSTM-cell) scanned from c_0 = state[1]: c is not among the states a fused forward returns.
        The gates are formed in x_proj's buffer ([T, B, 4H], the caller's own: it is overwritten)."""
        T, B, H4 = x_proj.shape
        gates = x_proj if bias_hh is None else x_proj.add_(bias_hh)
        flat = gates.view(T * B, H4)
        i, f, g, _ = lstm_gates(flat, h[:-1].reshape(T * B, -1), weight_hh, None, out=flat)  # one product
        i, f, g = (part.view(T, B, H4 // 4) for part in (i, f, g))
        c = stack_states(state[1], T)
        ig = i * g  # the input term of (LSTM-cell) for every step; one kernel a step remains
        for t in range(T):
            torch.addcmul(ig[t], f[t], c[t], out=c[t + 1])
        return LSTMTape(h, c, gates)

    def projection_input(self, tape: LSTMTape) -> torch.Tensor:
        """m_t = o_t ⊙ tanh(c_t) [T, B, H], what a projection W_hr maps to h_t (for ∂L/∂W_hr = Σ_t δh_tᵀ m_t)."""
        T, B, H4 = tape.gates.shape
        return lstm_hidden(tape.c[1:], tape.gates.view(T, B, 4, H4 // 4)[:, :, 3])

    def local_derivatives(self, tape: LSTMTape) -> LSTMDerivatives:
        T, B, H4 = tape.gates.shape
        i, f, g, o = tape.gates.view(T, B, 4, H4 // 4).unbind(2)
        tanh_c = torch.tanh(tape.c[1:])
        ifg = torch.stack((g * i * (1 - i), tape.c[:-1] * f * (1 - f), i * (1 - g * g)), dim=2)
        return LSTMDerivatives(ifg=ifg, o=tanh_c * o * (1 - o), c=o * (1 - tanh_c * tanh_c), f=f)

    def backward_sweep(self, tape: LSTMTape, scale: CarryScale, grad_final, weight_hh, weight_hr=None,
                       take_projections: Optional[TakeProjections] = None, norms: Optional[RowNorms] = None,
                       weight_ih: Optional[torch.Tensor] = None) -> SweepGrads:
        """The backward recurrences, from ``grad_final`` = (∂L/∂h_n, ∂L/∂c_n):

        (LSTM-back-h)  δh_t = ∂⁺L/∂h_t + δz_{t+1} W_hh
        (LSTM-back-m)  δm_t = δh_t W_hr  (δm_t = δh_t without a projection)
        (LSTM-back-c)  δc_t = δm_t ⊙ o_t ⊙ (1 − tanh² c_t) + δc_{t+1} ⊙ f_{t+1}
        (LSTM-back-z)  δz_t = [δc_t ⊙ ∂c/∂z^{i,f,g}, δm_t ⊙ ∂m/∂z^o]
        The local derivatives are formed in batched operations for DERIVATIVE_CHUNK steps at a time
        (a chunk's buffers stay in cache and are reused, where all T steps' would be hundreds of MB
        at T = 10⁴); the loop writes into preallocated buffers. The spans of steps run compiled where
        available (quiet and entered alike), forming their local derivatives in the same loop, so
        that then only the steps a final state enters need MERGING_CHUNK-step chunks of them.
        δh is [T, B, P], δc and δz's blocks [T, B, H].
        """
        explicit = scale.explicit
        T, B = explicit.shape[:2]
        H = tape.c.shape[-1]
        dh, dc = torch.empty_like(explicit), explicit.new_empty(T, B, H)
        carry_h, carry_c = grad_final[0].clone(), grad_final[1].clone()
        dm = dh if weight_hr is None else explicit.new_empty(T, B, H)
        compiled = kernels(explicit) if weight_hr is None else None
        chunks = _Chunks(self, tape, DERIVATIVE_CHUNK if compiled is None else MERGING_CHUNK)
        input_grad = InputGrad(explicit, weight_ih, compiled)
        projections = Projections(explicit, (4, H), 1, take_projections, compiled is not None, input_grad.keeps)

        def after_entering(t: int) -> None:  # δh_t is in dh[t]: eqs. (LSTM-back-m, -c, -z, -h)
            d, t0 = chunks.derivatives(t)
            s = t - t0
            z = projections.at(t)[0]
            if weight_hr is not None:
                torch.mm(dh[t], weight_hr, out=dm[t])
            torch.addcmul(carry_c, dm[t], d.c[s], out=dc[t])
            torch.mul(dc[t].unsqueeze(1), d.ifg[s], out=z[:, :3])
            torch.mul(dm[t], d.o[s], out=z[:, 3])
            torch.mm(z.view(B, 4 * H), weight_hh, out=carry_h)
            torch.mul(dc[t], d.f[s], out=carry_c)
            input_grad.step(t, z)

        def compiled_span(hi: int, lo: int, entry) -> None:
            """sweep_steps.cpp: the scale's entering and after_entering's steps compiled, forming the
            local derivatives as it goes from the gates and c (tanh c_t by activations.h's tanh, the compiled
            forward's)."""
            measure = (None, None) if norms is None else norms.outputs(hi, lo)
            compiled.lstm_steps(carry_h, carry_c, dh, dc, projections.buffers[0], tape.gates, tape.c, weight_hh,
                                weight_ih, input_grad.buffer, hi, lo, *measure, *(entry or (None,) * 4))

        scale.track(dh, dc)
        run_spans(scale, T, (carry_h, carry_c), dh, after_entering, None if compiled is None else compiled_span,
                  projections)
        return SweepGrads(dh, dc, (carry_h, carry_c), input_grad.result(projections))

    def step_jacobians(self, tape: LSTMTape, weight_hh) -> Iterator[torch.Tensor]:
        """Eq. (JAC-LSTM): [[∂h_t/∂h_{t−1}, ∂h_t/∂c_{t−1}], [∂c_t/∂h_{t−1}, ∂c_t/∂c_{t−1}]],
        each [B, 2H, 2H]."""
        d = self.local_derivatives(tape)
        W_i, W_f, W_g, W_o = weight_hh.chunk(4)
        for t in range(d.f.shape[0]):
            a = d.ifg[t]
            dc_dh = diag_times(a[:, 0], W_i) + diag_times(a[:, 1], W_f) + diag_times(a[:, 2], W_g)
            dh_dh = diag_times(d.o[t], W_o) + diag_times(d.c[t], dc_dh)
            top = torch.cat((dh_dh, torch.diag_embed(d.c[t] * d.f[t])), dim=-1)
            bottom = torch.cat((dc_dh, torch.diag_embed(d.f[t])), dim=-1)
            yield torch.cat((top, bottom), dim=-2)

    def forget_gates(self, tape: LSTMTape) -> torch.Tensor:
        H = tape.c.shape[-1]
        return tape.gates[..., self.forget_gate * H:(self.forget_gate + 1) * H]
