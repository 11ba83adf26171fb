"""SRN, LSTM and GRU written out step by step, with a hook point on every state.

Parameters carry torch's names, shapes and gate orders (``weight_ih_l{k}``: [G*H, in],
``weight_hh_l{k}``: [G*H, H], ``bias_ih_l{k}``, ``bias_hh_l{k}``: [G*H]; LSTM gates i, f, g, o;
GRU r, z, n), so torch's state dicts load unchanged and :func:`gradlab.from_torch` is a copy.
``forward`` takes and returns exactly what torch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` do.

Hook points, one per layer ``k`` (a :class:`~gradlab.models.hooks.HookPoint` receives the step ``t``):

- ``hook_h[k]``: h_t  [B, H], the tensor that feeds step t+1 and the layer's output;
- ``hook_c[k]`` (LSTM): c_t  [B, H], after c_t is formed and before h_t = o ⊙ tanh(c_t);
- ``hook_out[k]``: the layer's output sequence  [T, B, H] (time-major), ``t=None``.
"""

from __future__ import annotations

import math
from typing import ClassVar, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from gradlab.models.cells import ACTIVATIONS, gru_gates, gru_update, lstm_cell, lstm_gates, lstm_hidden, srn_step
from gradlab.models.hooks import HookPoint

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


class RecurrentModel(nn.Module):
    """The time loop shared by the three architectures; subclasses supply one step."""

    kind: ClassVar[str]
    gate_count: ClassVar[int]
    state_names: ClassVar[tuple[str, ...]] = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        factory = {"device": device, "dtype": dtype}
        rows = self.gate_count * hidden_size
        for k in range(num_layers):
            width = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(rows, width, **factory)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(rows, hidden_size, **factory)))
            if self.bias:
                self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(rows, **factory)))
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(rows, **factory)))
        for name in self.state_names:
            setattr(self, f"hook_{name}", nn.ModuleList(HookPoint() for _ in range(num_layers)))
        self.hook_out = nn.ModuleList(HookPoint() for _ in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation: every parameter uniform in ±1/√H."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_parameters(self, k: int) -> tuple[torch.Tensor, torch.Tensor,
                                                Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer ``k``; biases are None without bias."""
        get = lambda n: getattr(self, f"{n}_l{k}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        return s

    # -- the time loop -------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, state: Optional[State] = None):
        """x: [T, B, I] ([B, T, I] if batch_first, or [T, I] unbatched).

        state: h_0 [L, B, H] (LSTM: (h_0, c_0)), zeros when None.
        Returns (output, h_n), or (output, (h_n, c_n)) for the LSTM, as torch does:
        output [T, B, H] (laid out like x) holds the top layer's h_t; h_n, c_n: [L, B, H].
        """
        if x.dim() not in (2, 3):
            raise ValueError(f"{type(self).__name__}: expected a 2-D or 3-D input, got {x.dim()}-D")
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: the sequence is empty")
        states = self._initial_state(state, x, batched)
        seq = x
        finals = []
        for k in range(self.num_layers):
            seq, final = self._run_layer(k, seq, tuple(s[k] for s in states))
            finals.append(final)
        final_states = [torch.stack([f[i] for f in finals]) for i in range(len(self.state_names))]
        output = seq
        if not batched:
            output = output.squeeze(1)
            final_states = [s.squeeze(1) for s in final_states]
        elif self.batch_first:
            output = output.transpose(0, 1)
        if len(final_states) == 1:
            return output, final_states[0]
        return output, tuple(final_states)

    def _initial_state(self, state: Optional[State], x: torch.Tensor, batched: bool) -> tuple[torch.Tensor, ...]:
        shape = (self.num_layers, x.shape[1], self.hidden_size)
        if state is None:
            zeros = x.new_zeros(shape)
            return tuple(zeros for _ in self.state_names)
        parts = (state,) if isinstance(state, torch.Tensor) else tuple(state)
        if len(parts) != len(self.state_names):
            raise ValueError(f"{type(self).__name__}: state must be "
                             f"{'(h_0, c_0)' if len(self.state_names) == 2 else 'h_0'}")
        if not batched:
            parts = tuple(p.unsqueeze(1) for p in parts)
        for name, p in zip(self.state_names, parts):
            if tuple(p.shape) != shape:
                raise ValueError(f"{type(self).__name__}: {name}_0 must have shape {list(shape)}, "
                                 f"got {list(p.shape)}")
        return parts

    def _run_layer(self, k: int, seq: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """seq: [T, B, in] → (output sequence [T, B, H], final state tuple)."""
        weight_ih, weight_hh, bias_ih, bias_hh = self.layer_parameters(k)
        x_proj = F.linear(seq, weight_ih, bias_ih)  # [T, B, G*H], one product for all steps
        outputs = []
        # unbind, not x_proj[t]: the backward of T selects would write T full-size zero tensors
        for t, x_proj_t in enumerate(x_proj.unbind(0)):
            state = self._step(k, t, x_proj_t, state, weight_hh, bias_hh)
            outputs.append(state[0])
        return self.hook_out[k](torch.stack(outputs), None), state

    def _step(self, k, t, x_proj, state, weight_hh, bias_hh) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def to_torch(self) -> nn.Module:
        """The equivalent ``torch.nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (parameters copied)."""
        from gradlab.models.convert import to_torch

        return to_torch(self)


class SRN(RecurrentModel):
    """Simple recurrent network (Elman), eq. (SRN); ``nonlinearity`` "tanh" | "relu" | "linear"."""

    kind = "srn"
    gate_count = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 device=None, dtype=None) -> None:
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity must be one of {sorted(ACTIVATIONS)}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, device, dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"

    def _step(self, k, t, x_proj, state, weight_hh, bias_hh):
        h = srn_step(x_proj, state[0], weight_hh, bias_hh, self.nonlinearity)
        return (self.hook_h[k](h, t),)


class LSTM(RecurrentModel):
    """Long short-term memory, eqs. (LSTM-gates), (LSTM-cell), (LSTM-hidden); gates i, f, g, o."""

    kind = "lstm"
    gate_count = 4
    state_names = ("h", "c")

    def _step(self, k, t, x_proj, state, weight_hh, bias_hh):
        h, c = state
        i, f, g, o = lstm_gates(x_proj, h, weight_hh, bias_hh)
        c = self.hook_c[k](lstm_cell(i, f, g, c), t)
        h = self.hook_h[k](lstm_hidden(c, o), t)
        return h, c


class GRU(RecurrentModel):
    """Gated recurrent unit in torch's form, eqs. (GRU-gates), (GRU-update); gates r, z, n."""

    kind = "gru"
    gate_count = 3

    def _step(self, k, t, x_proj, state, weight_hh, bias_hh):
        h = state[0]
        _, z, n, _ = gru_gates(x_proj, h, weight_hh, bias_hh)
        return (self.hook_h[k](gru_update(z, n, h), t),)


MODEL_CLASSES: dict[str, type[RecurrentModel]] = {"srn": SRN, "lstm": LSTM, "gru": GRU}
