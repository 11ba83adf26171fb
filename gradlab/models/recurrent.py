"""SRN, LSTM and GRU as torch modules: the time loop around an architecture, with a hook point on
every state.

Parameters carry torch's names, shapes and gate orders (``weight_ih_l{k}``: [G·H, in],
``weight_hh_l{k}``: [G·H, H], ``bias_ih_l{k}``, ``bias_hh_l{k}``: [G·H]; LSTM gates i, f, g, o;
GRU r, z, n), so torch's state dicts load unchanged and :func:`gradlab.from_torch` is a copy.
``forward`` takes and returns exactly what torch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` do, and
``dropout`` acts between layers in training mode as theirs does (``gradlab/models/dropout.py``).

With ``bidirectional=True`` each layer runs a second direction from the last position to the first,
with its own parameters (``…_l{k}_reverse``); its output is the concatenation [T, B, 2H] of the two
directions at each input position, as torch's.

Hook points, one per layer ``k`` and direction ``d`` at index ``k·D + d`` (D = 2 if bidirectional
else 1, torch's order of h_n), each receiving the input position ``t`` of the step (the reverse
direction visits t = T−1 … 0); :meth:`RecurrentModel.hook_point` finds them by name:

- ``hook_h[kD+d]``: h_t  [B, H] ([B, proj_size] for a projected LSTM), the tensor that feeds the
  direction's next step and the output;
- ``hook_c[kD+d]`` (LSTM): c_t  [B, H], after c_t is formed and before h_t = o ⊙ tanh(c_t);
- ``hook_out[kD+d]``: the direction's output sequence  [T, B, H] (time-major, input order), ``t=None``;
- ``hook_dropout[k]`` (k < L−1, training mode with dropout > 0): the mask multiplying layer k's
  output [T, B, D·H] before layer k+1 reads it, ``t=None``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import ClassVar, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from gradlab.models.architectures import Architecture, GRUArchitecture, LSTMArchitecture, SRNArchitecture
from gradlab.models.dropout import between_layers
from gradlab.models.hooks import HookPoint
from gradlab.models.layout import SequenceLayout, along_time, within_length_reversal

#: What ``forward`` takes as its initial state and returns as its final one: h ([L, B, H]), or (h, c).
State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def state_parts(state: State) -> tuple[torch.Tensor, ...]:
    """A state as a tuple of tensors, one per state name."""
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def as_state(parts: tuple[torch.Tensor, ...]) -> State:
    """The inverse of :func:`state_parts`: h alone, or the tuple (h, c)."""
    return parts[0] if len(parts) == 1 else tuple(parts)


class RecurrentModel(nn.Module):
    """The time loop shared by every architecture; the subclasses choose the architecture.

    torch_module, torch_cell: torch's fused module and cell computing the same function.
    """

    torch_module: ClassVar[type[nn.Module]]
    torch_cell: ClassVar[type[nn.Module]]

    hook_h: nn.ModuleList  # [num_layers · D] HookPoint on h_t
    hook_c: Optional[nn.ModuleList]  # [num_layers · D] HookPoint on c_t, for architectures with a cell state
    hook_out: nn.ModuleList  # [num_layers · D] HookPoint on each direction's output sequence
    hook_dropout: nn.ModuleList  # [num_layers − 1] HookPoint on the dropout mask after each layer but the last

    def __init__(self, architecture: Architecture, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(proj_size, int) or isinstance(proj_size, bool) or not 0 <= proj_size < hidden_size:
            raise ValueError(f"proj_size must be an integer in [0, hidden_size) = [0, {hidden_size}), got {proj_size!r}")
        if proj_size and "c" not in architecture.state_names:
            raise ValueError(f"proj_size applies to the LSTM, not the {architecture.label}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if dropout and num_layers == 1:
            warnings.warn(f"dropout={dropout} acts between layers; with num_layers=1 there is none (as in torch)",
                          stacklevel=3)
        self.architecture = architecture
        self.dropout = float(dropout)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.proj_size = proj_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        factory = {"device": device, "dtype": dtype}
        rows = architecture.gate_count * hidden_size
        for k in range(num_layers):
            width = input_size if k == 0 else self.num_directions * self.output_size
            for d in range(self.num_directions):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                self.register_parameter("weight_ih" + suffix, nn.Parameter(torch.empty(rows, width, **factory)))
                self.register_parameter("weight_hh" + suffix,
                                        nn.Parameter(torch.empty(rows, self.output_size, **factory)))
                if self.bias:
                    self.register_parameter("bias_ih" + suffix, nn.Parameter(torch.empty(rows, **factory)))
                    self.register_parameter("bias_hh" + suffix, nn.Parameter(torch.empty(rows, **factory)))
                if proj_size:  # eq. (LSTM-proj): h_t = W_hr (o ⊙ tanh c_t)
                    self.register_parameter("weight_hr" + suffix,
                                            nn.Parameter(torch.empty(proj_size, hidden_size, **factory)))
        points = lambda: nn.ModuleList(HookPoint() for _ in range(num_layers * self.num_directions))  # noqa: E731
        self.hook_h = points()
        self.hook_c = points() if "c" in architecture.state_names else None
        self.hook_out = points()
        self.hook_dropout = nn.ModuleList(HookPoint() for _ in range(num_layers - 1))
        self.reset_parameters()

    @property
    def kind(self) -> str:
        """The architecture's name: "srn", "lstm" or "gru"."""
        return self.architecture.name

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.architecture.state_names

    @property
    def output_size(self) -> int:
        """The width of h_t and of each direction's output: proj_size if the LSTM projects, else hidden_size."""
        return self.proj_size or self.hidden_size

    @property
    def state_sizes(self) -> dict[str, int]:
        """The width of each state: h is output_size wide, the LSTM's c hidden_size."""
        return {name: self.output_size if name == "h" else self.hidden_size for name in self.state_names}

    def extra_weights(self, k: int, direction: int = 0) -> dict[str, torch.Tensor]:
        """Further per-layer weights the architecture's methods take as keyword arguments: the
        projected LSTM's {"weight_hr": [P, H]}, else none."""
        if not self.proj_size:
            return {}
        return {"weight_hr": getattr(self, f"weight_hr_l{k}" + ("_reverse" if direction else ""))}

    @property
    def num_directions(self) -> int:
        """2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    def hook_point(self, name: str, layer: int, direction: int = 0) -> HookPoint:
        """The hook point of state ``name`` ("h", "c"), "out" in ``layer``, ``direction``, or of the
        "dropout" mask after ``layer``."""
        if name == "dropout":
            return self.hook_dropout[layer]
        points = {"h": self.hook_h, "c": self.hook_c, "out": self.hook_out}.get(name)
        if points is None:
            raise KeyError(f"{type(self).__name__} has hook points "
                           f"{', '.join(self.state_names + ('out', 'dropout'))}, not {name!r}")
        return points[layer * self.num_directions + direction]

    def reset_parameters(self) -> None:
        """torch's initialisation: every parameter uniform in ±1/√H."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_parameters(self, k: int, direction: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                                   Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer ``k``, ``direction``; biases are None
        without bias."""
        suffix = f"_l{k}" + ("_reverse" if direction else "")
        get = lambda n: getattr(self, n + suffix, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for key, value in self.architecture.options().items():
            s += f", {key}={value!r}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s

    # -- the boundary ------------------------------------------------------------------------------

    def layout_of(self, x: torch.Tensor) -> SequenceLayout:
        """How ``x`` is laid out for this model (batch_first, unbatched), checked once here."""
        layout = SequenceLayout.of(x, self.batch_first, type(self).__name__)
        width = layout.width(x)
        if width != self.input_size:
            raise ValueError(f"{type(self).__name__}: the input has {width} features per step; the model takes "
                             f"input_size={self.input_size}")
        return layout

    def initial_state(self, state: Optional[State], layout: SequenceLayout, batch: int,
                      like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The initial state as one [L·D, B, H] tensor per state name (row k·D + d for layer k,
        direction d; H is the state's width, ``state_sizes``): zeros when ``state`` is None, else
        ``state`` (as the model takes it) checked and brought into that form."""
        shapes = {name: (self.num_layers * self.num_directions, batch, size) for name, size in self.state_sizes.items()}
        if state is None:
            return tuple(like.new_zeros(shapes[name]) for name in self.state_names)
        parts = state_parts(state)
        if len(parts) != len(self.state_names):
            raise ValueError(f"{type(self).__name__}: state must be "
                             f"{'(h_0, c_0)' if len(self.state_names) == 2 else 'h_0'}")
        parts = tuple(layout.state_in(p) for p in parts)
        for name, p in zip(self.state_names, parts):
            if tuple(p.shape) != shapes[name]:
                raise ValueError(f"{type(self).__name__}: {name}_0 must have shape "
                                 f"{list(layout.state_out(torch.empty(shapes[name])).shape)}, "
                                 f"got {list(layout.state_out(p).shape)}")
        return parts

    # -- the time loop -----------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, state: Optional[State] = None):
        """x: [T, B, I] ([B, T, I] if batch_first, or [T, I] unbatched), or a PackedSequence.

        state: h_0 [L·D, B, H] (LSTM: (h_0, c_0)), zeros when None.
        Returns (output, h_n), or (output, (h_n, c_n)) for the LSTM, as torch does:
        output [T, B, D·H] (laid out like x) holds the top layer's h_t of every direction;
        h_n, c_n: [L·D, B, H], each direction's state after its last step. A packed input gives a
        packed output of the same structure, and each sample's final state after its own last step.
        """
        layout = self.layout_of(x)
        seq = layout.time_major(x)
        if seq.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: the sequence is empty")
        states = self.initial_state(state, layout, seq.shape[1], seq)
        finals = []
        D = self.num_directions
        for k in range(self.num_layers):
            outputs = []
            for d in range(D):
                out, final = self._run_direction(k, d, seq, tuple(s[k * D + d] for s in states), layout.lengths)
                outputs.append(out)
                finals.append(final)
            seq = torch.cat(outputs, dim=-1) if D > 1 else outputs[0]
            if k < self.num_layers - 1:
                seq = between_layers(seq, self.dropout, self.training, layout.packing,
                                     lambda mask: self.hook_dropout[k](mask, None))
        final_states = tuple(layout.state_out(torch.stack([f[i] for f in finals])) for i in range(len(self.state_names)))
        return layout.restore(seq), as_state(final_states)

    def _run_direction(self, k: int, d: int, seq: torch.Tensor, state: tuple[torch.Tensor, ...],
                       lengths: Optional[torch.Tensor] = None):
        """seq: [T, B, in] → (this direction's output sequence [T, B, H] in input order, final state).

        With ``lengths`` [B] (a packed batch) the padding after each sample is stepped over too, but
        nothing reads it: the reverse direction visits each sample from its own last position, and
        the final state is each sample's state after its own last step.
        """
        weight_ih, weight_hh, bias_ih, bias_hh = self.layer_parameters(k, d)
        extra = self.extra_weights(k, d)
        x_proj = F.linear(seq, weight_ih, bias_ih)  # [T, B, G*H], one product for all steps
        T = x_proj.shape[0]
        order = within_length_reversal(lengths, T) if d and lengths is not None else None
        if order is not None:  # sweep each sample reversed within its own length
            rows = along_time(x_proj, order).unbind(0)
            visits = [row[0].item() if bool((row == row[0]).all()) else row for row in order]
        else:  # unbind, not x_proj[t]: the backward of T selects would write T full-size zero tensors
            visits = list(range(T - 1, -1, -1) if d else range(T))  # the position each step reads
            steps = x_proj.unbind(0)
            rows = [steps[t] for t in visits]
        outputs, states = [], []
        for row, t in zip(rows, visits):
            hook = lambda name, tensor: self.hook_point(name, k, d)(tensor, t)  # noqa: E731
            state = self.architecture.step(row, state, weight_hh, bias_hh, hook, **extra)
            outputs.append(state[0])
            states.append(state)
        out = torch.stack(outputs)
        if order is not None:
            out = along_time(out, order)  # the reversal within length is its own inverse
        elif d:
            out = out.flip(0)
        if lengths is not None:  # each sample's state after its own last step
            last, batch = (lengths - 1).clamp_min(0), torch.arange(len(lengths), device=lengths.device)
            state = tuple(torch.stack([st[i] for st in states])[last, batch] for i in range(len(state)))
        return self.hook_point("out", k, d)(out, None), state

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """One time step of the whole stack, without hooks: x_t [B, I] (or [I]); state: one
        [L, B, H] (or [L, H]) tensor per state name → the state after the step, in the same form.

        The same arithmetic as ``forward`` taken in time-major order (theory differentiates it); a
        bidirectional model has no one-step map and is refused.
        """
        if self.bidirectional:
            raise ValueError("a bidirectional model has no one-step map: its reverse direction reads the future")
        inp, new = x_t, []
        for k in range(self.num_layers):
            weight_ih, weight_hh, bias_ih, bias_hh = self.layer_parameters(k)
            out = self.architecture.step(F.linear(inp, weight_ih, bias_ih), tuple(s[k] for s in state),
                                         weight_hh, bias_hh, **self.extra_weights(k))
            new.append(out)
            inp = out[0]
        return tuple(torch.stack([s[i] for s in new]) for i in range(len(self.state_names)))


class SRN(RecurrentModel):
    """Simple recurrent network (Elman), eq. (SRN); ``nonlinearity`` "tanh" | "relu" | "linear"."""

    torch_module, torch_cell = nn.RNN, nn.RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__(SRNArchitecture(nonlinearity), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype)

    @property
    def nonlinearity(self) -> str:
        return self.architecture.nonlinearity


class LSTM(RecurrentModel):
    """Long short-term memory, eqs. (LSTM-gates), (LSTM-cell), (LSTM-hidden); gates i, f, g, o.
    ``proj_size`` P > 0 projects h_t = W_hr (o ⊙ tanh c_t) to P units, as torch's (eq. LSTM-proj)."""

    torch_module, torch_cell = nn.LSTM, nn.LSTMCell
    hook_c: nn.ModuleList

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__(LSTMArchitecture(), input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)


class GRU(RecurrentModel):
    """Gated recurrent unit in torch's form, eqs. (GRU-gates), (GRU-update); gates r, z, n."""

    torch_module, torch_cell = nn.GRU, nn.GRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__(GRUArchitecture(), input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype)


MODEL_CLASSES: dict[str, type[RecurrentModel]] = {"srn": SRN, "lstm": LSTM, "gru": GRU}


def takes_nonlinearity(kind: str) -> bool:
    """Whether the model class of ``kind`` has a choice of nonlinearity (the SRN)."""
    return "nonlinearity" in inspect.signature(MODEL_CLASSES[kind]).parameters


def build_model(kind: str, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                **kwargs) -> RecurrentModel:
    """A model by its architecture's name; ``nonlinearity`` applies to the SRN (others take only "tanh")."""
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model {kind!r}; choose from {', '.join(MODEL_CLASSES)}")
    if takes_nonlinearity(kind):
        return MODEL_CLASSES[kind](input_size, hidden_size, num_layers, nonlinearity=nonlinearity, **kwargs)
    if nonlinearity != "tanh":
        raise ValueError(f"nonlinearity applies to the SRN only; a {kind} has none to choose")
    return MODEL_CLASSES[kind](input_size, hidden_size, num_layers, **kwargs)
