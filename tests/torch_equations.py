"""An independent reference: torch's recurrent modules unrolled from the equations in torch's own
documentation (nn.RNN, nn.LSTM, nn.GRU), one sample and one step at a time, written here and not
through any of gradlab's code. Every state it forms is kept, for torch.autograd.grad.

    RNN:  h_t = tanh|relu(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)
    LSTM: i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), in that order;
          c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t), and with proj_size > 0 h_t = W_hr (o ⊙ tanh(c_t))
    GRU:  r, z = σ(x_t W_i{r,z}ᵀ + b_i{r,z} + h_{t−1} W_h{r,z}ᵀ + b_h{r,z});
          n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t−1} W_hnᵀ + b_hn));  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

Layer k > 0 reads the concatenation of the layer below's directions at the same position; the
reverse direction reads a sample's positions len−1 … 0; h_n is each direction's state after its
last step.
"""

import torch
from torch import nn


def _step(module: nn.Module, x, state, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = state[0] @ w_hh.T + (0 if b_hh is None else b_hh)
    if isinstance(module, nn.LSTM):
        i, f, g, o = (gi + gh).chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if w_hr is None else w_hr @ h), c
    if isinstance(module, nn.GRU):
        (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return ((1 - z) * n + z * state[0],)
    act = torch.tanh if module.nonlinearity == "tanh" else torch.relu
    return (act(gi + gh),)


def unrolled(module: nn.Module, x: torch.Tensor, lengths: list[int], initial: tuple):
    """x: [T, B, I] time-major, padded; lengths: each sample's; initial: one [L·D, B, H] per state.

    Returns (output [T, B, D·H] zero past each length, finals: one [L·D, B, H] per state name,
    states: {(name, layer, direction, t): [H] tensor} for every sample b as states[…][b])."""
    L, D = module.num_layers, 2 if module.bidirectional else 1
    T, B = x.shape[:2]
    names = ("h", "c") if isinstance(module, nn.LSTM) else ("h",)
    states: dict = {}
    outputs, finals = [], [[[None] * B for _ in range(L * D)] for _ in names]
    for b in range(B):
        n = lengths[b]
        seq = [x[t, b] for t in range(n)]
        for k in range(L):
            per_direction = []
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                params = [getattr(module, f"{w}{sfx}", None)
                          for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]
                state = tuple(s[k * D + d, b] for s in initial)
                out = [None] * n
                for t in (reversed(range(n)) if d else range(n)):
                    state = _step(module, seq[t], state, *params)
                    for name, s in zip(names, state):
                        states.setdefault((name, k, d, t), {})[b] = s
                    out[t] = state[0]
                per_direction.append(out)
                for i, s in enumerate(state):
                    finals[i][k * D + d][b] = s
            seq = [torch.cat([p[t] for p in per_direction]) for t in range(n)]
        H = seq[0].shape[0]
        outputs.append(torch.stack(seq + [seq[0].new_zeros(H)] * (T - n)))
    output = torch.stack(outputs, dim=1)
    return output, tuple(torch.stack([torch.stack(f) for f in fin]) for fin in finals), states
