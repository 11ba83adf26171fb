"""What every architecture owns, and what it hands to the engine.

An :class:`Architecture` is one recurrence written once (equations in docs/models.md and
docs/derivations.md): its step as plain math, the forward sweep that keeps what the backward pass
needs (its *tape*), the backward sweep over time, its local derivatives and its one-step Jacobian.
The time loop with hook points (``gradlab.models.recurrent``), the engine, theory and the tests
all call these methods, so no formula lives anywhere else.

Row-vector convention as in torch: ``x_t: [B, I]``, ``h: [B, H]``, weights ``[G·H, in]`` with
G = ``len(gates)``. The input projection ``x_proj = x W_ihᵀ + b_ih`` does not depend on the
recurrence, so callers compute it for all steps in one matrix product.

Words used throughout: ``grad_final`` is the gradient arriving at the last step's state from
beyond the sequence (∂L/∂h_n, ∂L/∂c_n); ``grad_initial`` the gradient a sweep leaves on the
initial state; the *carry* is the adjoint passed from step t+1 back to step t inside a sweep.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from typing import Callable, ClassVar, Iterator, Optional, Protocol

import torch

#: The kinds of span a carry scale yields (:meth:`CarryScale.spans`).
QUIET, ENTERED, FINAL = "quiet", "entered", "final"

#: A hook on a state as soon as the step forms it: (state name, tensor) → the tensor to use.
StateHook = Callable[[str, torch.Tensor], torch.Tensor]


def no_hook(name: str, tensor: torch.Tensor) -> torch.Tensor:
    return tensor


class Tape(Protocol):
    """What a forward sweep keeps of one layer; ``h`` is [T+1, B, H] with h[0] the initial state."""

    h: torch.Tensor

    @property
    def final(self) -> tuple[torch.Tensor, ...]:
        """The state after the last step, one [B, H] tensor per state name."""


def first_steps(tape, n: int):
    """The tape of a layer's first n steps (views, no copy): every field of an architecture's tape
    dataclass is either per state, [T+1, …] with the state before step 0 first, or per step, [T, …]."""
    T = tape.h.shape[0] - 1
    return replace(tape, **{f.name: getattr(tape, f.name)[:n + getattr(tape, f.name).shape[0] - T]
                            for f in fields(tape)})


class CarryScale(Protocol):
    """How a backward sweep adds the explicit gradient to the carry and keeps the carry in range.

    The engine supplies a plain implementation (values as they are) and a log-domain one (a
    unit-size carry with a separate float64 log scale); the sweeps are written once for both.
    ``explicit``: [T, B, H], the explicit gradients in the form the sweep works in.
    """

    explicit: torch.Tensor

    def track(self, *outputs: torch.Tensor) -> None:
        """The sweep's per-step outputs ([T, B, ·]: δh, and δc) that the scale may check for range."""

    def spans(self, T: int, carries: tuple[torch.Tensor, ...],
              compiled: bool = False) -> Iterator[tuple[int, int, str]]:
        """The steps to run, T−1 down to 0, as (hi, lo, kind) with hi ≥ lo:

        - QUIET: steps in which nothing merges into the carry and nothing rescales it — the sweep
          runs them with δh_t = carry, calling neither :meth:`enter` nor :meth:`renormalize`;
        - ENTERED: steps each entered (:meth:`enter`), stepped and renormalised, where only the
          explicit gradient enters (what :meth:`entry` describes to a compiled step);
        - FINAL: the one step hi = lo where a final state's gradient enters too, run eagerly.

        The log-domain scale may yield a quiet span's steps a second time as an ENTERED span (after
        restoring ``carries`` as they entered it), so a sweep keeps no state across steps other than
        its carries and writes every step's outputs afresh. compiled: the spans go to compiled
        steps, for which entering and rescaling cost next to nothing: a scale may then run quiet
        steps as entered ones (entering a zero explicit gradient leaves the carry as it is)."""

    def entry(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
        """What :meth:`enter` reads and writes, for a compiled ENTERED span (sweep_steps.cpp): the
        explicit gradient [T, B, H], and for the log domain its log [T, B], the carry's log scale [B]
        (updated in place) and the per-step log scales [T, B] (written); None where the scale has none."""

    def enter(self, t: int, carry: torch.Tensor, others: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        """Write the total δh_t = ∂⁺L/∂h_t + carry into ``out``; rescale ``others`` alike."""

    def renormalize(self, *carries: torch.Tensor) -> None:
        """Bring the carries back into range (the plain scale does nothing)."""


@dataclass
class SweepGrads:
    """The backward sweep of one layer (time-major, T steps).

    dh:           [T, B, H]   total ∂L/∂h_t
    dc:           [T, B, H]   total ∂L/∂c_t (architectures with a cell state), else None
    grad_initial: the gradient on the initial state, one [B, H] tensor per state name
    input_grad:   [T, B, I]   δx_t W_ih, the gradient on the layer's input through this sweep, where the
                  caller asked for it with ``weight_ih`` (:class:`InputGrad`), else None
    """

    dh: torch.Tensor
    dc: Optional[torch.Tensor]
    grad_initial: tuple[torch.Tensor, ...]
    input_grad: Optional[torch.Tensor] = None


@dataclass
class RowNorms:
    """What a sweep's compiled steps measure of each row they store, as they store it
    (``Measure`` in sweep_steps.cpp), per state s in ``state_names`` order:

    norms:    [S, 2, T, B] float64: [s, 0] the L2 norm of the stored row (in the log domain the
              unit-size x̂_t), [s, 1] that of its plain value as the dtype holds it (in the log domain
              ``to_plain``'s, gradlab/engine/logscale.py)
    values:   [S, T, B, H] the plain values of log-domain rows, if the caller keeps them, else None
    measured: [T] bool, the steps measured; the steps that ran eagerly are left to the caller
    """

    norms: torch.Tensor
    values: Optional[torch.Tensor]
    measured: torch.Tensor

    @classmethod
    def for_sweep(cls, states: int, rows: torch.Tensor, values: bool) -> "RowNorms":
        """Empty buffers for a sweep storing ``states`` rows [T, B, H] like ``rows`` a step."""
        T, B, H = rows.shape
        return cls(rows.new_empty((states, 2, T, B), dtype=torch.float64),
                   rows.new_empty((states, T, B, H)) if values else None, torch.zeros(T, dtype=torch.bool))

    def outputs(self, hi: int, lo: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The buffers a compiled span of steps hi … lo writes (norms, values); they count as measured."""
        self.measured[lo:hi + 1] = True
        return self.norms, self.values


def run_spans(scale: CarryScale, T: int, carries: tuple[torch.Tensor, ...], dh: torch.Tensor,
              after_entering: Callable[[int], None],
              compiled_span: Optional[Callable[[int, int, Optional[tuple]], None]],
              projections: Optional["Projections"] = None) -> None:
    """The loop of every backward sweep, over the scale's spans (:meth:`CarryScale.spans`).

    carries: (the carry into δh, then any others, e.g. δc), updated in place; dh: [T, B, H], where
    step t's total δh_t goes; after_entering(t): the architecture's step from δh_t (in dh[t]) to the
    next carries; compiled_span(hi, lo, entry): steps hi … lo in one compiled call, quiet (entry
    None) or entered (entry: :meth:`CarryScale.entry`), or None: then every step runs eagerly, a
    quiet one as dh[t] ← carry and after_entering(t), any other entered, stepped and renormalised.
    projections: where the steps keep their projection gradients; compiled spans are cut where its
    chunks end, and each chunk is handed on once its steps are done (eager sweeps hand on all steps at
    the end: the log-domain scale may run a span's steps twice)."""
    compiled = compiled_span is not None
    for hi, lo, kind in scale.spans(T, carries, compiled=compiled):
        if compiled and kind != FINAL:
            for top, bottom in (projections.pieces(hi, lo) if projections is not None else [(hi, lo)]):
                compiled_span(top, bottom, None if kind == QUIET else scale.entry())
                if projections is not None:
                    projections.done(bottom)
        elif kind == QUIET:
            for t in range(hi, lo - 1, -1):
                dh[t].copy_(carries[0])
                after_entering(t)
        else:
            for t in range(hi, lo - 1, -1):
                scale.enter(t, carries[0], carries[1:], out=dh[t])
                after_entering(t)
                scale.renormalize(*carries)
            if compiled and projections is not None:
                projections.done(lo)
    if not compiled and projections is not None:
        projections.done(0)


#: About how many bytes of projection gradients a compiled sweep keeps before handing them on, and the
#: fewest steps it keeps: each chunk is a compiled call, which lays out its weights anew (2.2 ms for an
#: LSTM's W_hh at H = 1024; its bptt() at B = 32, T = 200: 1.27 and 1.47 s in chunks of 16 steps, the
#: 8 MB, against 1.26 and 1.39 s in chunks of 64; AMD EPYC, 2 threads).
CHUNK_BYTES = 8 * 2**20
CHUNK_STEPS = 64

#: Receives the projection gradients of steps lo … hi: (lo, hi, δx rows, δy rows), each [hi − lo + 1, B, G·H].
TakeProjections = Callable[[int, int, torch.Tensor, torch.Tensor], None]


class Projections:
    """Where a backward sweep keeps the gradients on its projections, and when it hands them on.

    ``buffers``: one or two [rows, B, *tail] tensors (δx_t on the input projection; δy_t on the recurrent
    one where a gate sits between the two, as in the GRU), step t in row t mod rows. With ``take``
    (the caller's sums, eq. PARAM-grads), compiled steps keep chunks of about CHUNK_BYTES (rows steps,
    at least CHUNK_STEPS) and hand each to ``take`` as soon as its steps are done, so that no
    [T, B, G·H] buffer is filled and read back from memory; eager steps keep all T and hand them on at
    the end. Without ``take`` one step's rows are reused, or all T where eager steps leave ∂L/∂x to one
    product after the sweep (``keep_all``, :class:`InputGrad`)."""

    def __init__(self, explicit: torch.Tensor, tail: tuple[int, ...], count: int, take: Optional[TakeProjections],
                 compiled: bool, keep_all: bool = False) -> None:
        T, B = explicit.shape[:2]
        width = math.prod(tail)
        self.T, self.take = T, take
        self.chunked = take is not None and compiled
        if self.chunked:
            self.rows = min(T, max(CHUNK_STEPS, CHUNK_BYTES // (B * width * count * explicit.element_size()), 1))
        else:
            self.rows = T if take is not None or keep_all else 1
        self.buffers = [explicit.new_empty(self.rows, B, *tail) for _ in range(count)]

    def at(self, t: int) -> list[torch.Tensor]:
        """Step t's rows of each buffer, [B, *tail]."""
        return [buf[t % self.rows] for buf in self.buffers]

    def pieces(self, hi: int, lo: int) -> list[tuple[int, int]]:
        """Steps hi … lo cut where chunks end (at multiples of rows), top first."""
        if not self.chunked:
            return [(hi, lo)]
        cuts = []
        while hi >= lo:
            bottom = max(lo, hi - hi % self.rows)
            cuts.append((hi, bottom))
            hi = bottom - 1
        return cuts

    def done(self, t: int) -> None:
        """Steps down to t are done: hand on the chunk that t begins (all T steps when not chunked)."""
        if self.take is None or t % self.rows:
            return
        n = min(self.rows, self.T - t)
        views = [buf[:n].flatten(2) for buf in self.buffers]
        self.take(t, t + n - 1, views[0], views[-1])

    def all_steps(self) -> Optional[torch.Tensor]:
        """The δx of all T steps, [T, B, G·H], where kept (else None)."""
        return self.buffers[0].flatten(2) if self.rows == self.T else None


class InputGrad:
    """How a sweep gives ∂L/∂x_t = δx_t W_ih (eq. PARAM-grads) where the caller asked for it with
    ``weight_ih`` [G·H, I]: compiled steps form its rows as they go (``buffer`` [T, B, I], which the
    steps write, and the eager steps left in a compiled sweep too, with :meth:`step`); eager sweeps keep
    every step's δx (``keeps``) for one product after the sweep (:meth:`result`)."""

    def __init__(self, explicit: torch.Tensor, weight_ih: Optional[torch.Tensor], compiled) -> None:
        self.weight = weight_ih
        self.buffer = None
        if weight_ih is not None and compiled is not None:
            self.buffer = explicit.new_empty(explicit.shape[0], explicit.shape[1], weight_ih.shape[1])
        self.keeps = weight_ih is not None and compiled is None

    def step(self, t: int, dx_proj: torch.Tensor) -> None:
        """An eager step t of a compiled sweep: its row from δx_t [B, G·H] (or [B, G, H])."""
        if self.buffer is not None:
            torch.mm(dx_proj.flatten(1), self.weight, out=self.buffer[t])

    def result(self, projections: Projections) -> Optional[torch.Tensor]:
        """∂L/∂x [T, B, I] through the sweep (None where not asked for), from every step's δx where
        :attr:`keeps`."""
        if self.buffer is not None or self.weight is None:
            return self.buffer
        return projections.all_steps() @ self.weight


def stack_states(first: torch.Tensor, T: int) -> torch.Tensor:
    """A [T+1, B, H] buffer whose row 0 is ``first`` (the state before step 0)."""
    buf = first.new_empty((T + 1,) + tuple(first.shape))
    buf[0] = first
    return buf


def diag_times(v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """diag(v) M for a batch: v [B, H], M [H, K] → [B, H, K]."""
    return v.unsqueeze(-1) * m


class Architecture(ABC):
    """One recurrent architecture. Subclasses set the class attributes and implement the methods.

    name: the registry key ("lstm"); label: how figures and tables name it ("LSTM");
    gates: torch's gate order, one letter per H-row block of the weights;
    state_names: ("h",) or ("h", "c"); the first is always the hidden state that feeds the output.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    gates: ClassVar[tuple[str, ...]]
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    #: True when b_hh only ever adds to b_ih (a single-bias layout loses nothing); False for the
    #: GRU, whose b_hn sits inside the reset gate's product.
    bias_hh_is_redundant: ClassVar[bool] = True
    #: The gate block of the forget gate, for architectures that have one (LSTM), else None.
    forget_gate: ClassVar[Optional[int]] = None

    @property
    def gate_count(self) -> int:
        return len(self.gates)

    @property
    def derivative_bound(self) -> Optional[float]:
        """sup |φ′| of the state nonlinearity where a Pascanu–Mikolov–Bengio bound applies (γ), else None."""
        return None

    def options(self) -> dict:
        """The constructor options that make this architecture (e.g. the SRN's nonlinearity)."""
        return {}

    @abstractmethod
    def step(self, x_proj: torch.Tensor, state: tuple[torch.Tensor, ...], weight_hh: torch.Tensor,
             bias_hh: Optional[torch.Tensor], hook: StateHook = no_hook) -> tuple[torch.Tensor, ...]:
        """One differentiable step. x_proj: [B, G·H]; state: one [B, H] per state name.

        ``hook(name, tensor)`` sees every state as soon as it is formed and returns the tensor the
        step goes on with. Returns the new state in ``state_names`` order.
        """

    @abstractmethod
    def forward_sweep(self, x_proj: torch.Tensor, state: tuple[torch.Tensor, ...], weight_hh: torch.Tensor,
                      bias_hh: Optional[torch.Tensor]) -> Tape:
        """All T steps of one layer under no_grad, into preallocated buffers. x_proj: [T, B, G·H], the
        caller's own (the tape may be formed in its buffer)."""

    @abstractmethod
    def tape_from_states(self, x_proj: torch.Tensor, h: torch.Tensor, state: tuple[torch.Tensor, ...],
                         weight_hh: torch.Tensor, bias_hh: Optional[torch.Tensor]) -> Tape:
        """The tape of a forward that has already run (torch's fused kernels), from its hidden states
        h [T+1, B, H] (h[0] the initial state) and x_proj [T, B, G·H]: everything the states give is
        computed for all steps at once with the same equations as :meth:`step`; only what they do not
        give (the LSTM's cell state) is scanned. state: the initial state, one [B, ·] per name."""

    @abstractmethod
    def backward_sweep(self, tape: Tape, scale: CarryScale, grad_final: tuple[torch.Tensor, ...],
                       weight_hh: torch.Tensor, take_projections: Optional[TakeProjections] = None,
                       norms: Optional[RowNorms] = None, weight_ih: Optional[torch.Tensor] = None) -> SweepGrads:
        """The backward recurrences of one layer, from ``grad_final`` (one [B, H] per state) down to step 0.
        take_projections: where the gradients on the projections go, step by step in chunks (for the
        parameter gradients; see :class:`Projections`); without, they are not kept.
        norms: where the compiled steps measure the rows they store (the eager steps leave it alone).
        weight_ih: [G·H, I], where the caller needs ∂L/∂x (``SweepGrads.input_grad``, see :class:`InputGrad`)."""

    @abstractmethod
    def step_jacobians(self, tape: Tape, weight_hh: torch.Tensor) -> Iterator[torch.Tensor]:
        """For t = 0 … T−1, the Jacobian of the state after step t with respect to the state before
        it, [B, S, S] with S = len(state_names)·H (blocks in ``state_names`` order)."""

    def forget_gates(self, tape: Tape) -> Optional[torch.Tensor]:
        """[T, B, H] the forget gates along the tape, for architectures that have them."""
        return None
