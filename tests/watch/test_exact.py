"""Every recorded ∂L/∂h_t and ∂L/∂c_t of a watched torch module against torch.autograd.grad on an
unrolled model written from torch's documented equations (tests/torch_equations.py), in float64:
max |a − b| ≤ 1e-10 · max |b| per layer, direction and step, for the losses users write — on the
outputs, on h_n and on c_n; and the gradients the step leaves on the parameters, the input and the
initial state against the same reference, whoever ran the module's backward pass (torch's fused
kernels, or with ``backward="gradlab"`` the recorded sweep)."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gradlab
from torch_equations import unrolled

DT = torch.float64
T, B, I, H = 5, 3, 2, 3
LENGTHS = [5, 2, 4]
KINDS = {"rnn-tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw), "rnn-relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
         "lstm": lambda **kw: nn.LSTM(**kw), "lstm-proj": lambda **kw: nn.LSTM(proj_size=2, **kw),
         "gru": lambda **kw: nn.GRU(**kw)}
CASES = list(itertools.product(KINDS, [1, 2], [False, True], [False, True], [False, True], ["torch", "gradlab"]))


@pytest.mark.parametrize("kind,layers,bidirectional,packed,batch_first,backward", CASES,
                         ids=[f"{k}-L{n}-{'bi' if bi else 'uni'}-{'packed' if p else 'padded'}{'-bf' if bf else ''}-{bw}"
                              for k, n, bi, p, bf, bw in CASES])
def test_every_recorded_state_gradient_equals_autograd_on_the_documented_equations(
        kind, layers, bidirectional, packed, batch_first, backward):
    torch.manual_seed(0)
    module = KINDS[kind](input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidirectional,
                         batch_first=batch_first, dtype=DT)
    D = 2 if bidirectional else 1
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=gen, dtype=DT).requires_grad_(True)
    lengths = LENGTHS if packed else [T] * B
    lstm = isinstance(module, nn.LSTM)
    names = ("h", "c") if lstm else ("h",)
    P = module.proj_size if lstm and module.proj_size else H  # the width of h
    widths = {"h": P, "c": H}
    initial = tuple(torch.randn(layers * D, B, widths[n], generator=gen, dtype=DT).requires_grad_(True) for n in names)
    w_out = torch.randn(T, B, D * P, generator=gen, dtype=DT)
    w_final = [torch.randn(layers * D, B, widths[n], generator=gen, dtype=DT) for n in names]
    valid = (torch.arange(T).unsqueeze(1) < torch.tensor(lengths)).unsqueeze(-1)

    def loss_of(out_tm, finals):
        return ((out_tm * w_out * valid) ** 2).sum() + sum((f * w).sum() for f, w in zip(finals, w_final))

    def as_module_takes(t):  # [T, B, …] → the module's input layout
        return t.transpose(0, 1) if batch_first else t

    with gradlab.watch(module, full=True, backward=backward) as w:
        if packed:
            out, final = module(pack_padded_sequence(as_module_takes(x), torch.tensor(lengths), batch_first=batch_first,
                                                     enforce_sorted=False), initial if lstm else initial[0])
            out_tm = pad_packed_sequence(out, total_length=T)[0]
        else:
            out, final = module(as_module_takes(x), initial if lstm else initial[0])
            out_tm = as_module_takes(out)
        loss_of(out_tm, final if lstm else (final,)).backward()
    trace = w.traces[0][""]

    ref_out, ref_finals, states = unrolled(module, x, lengths, initial)
    keys = list(states)
    tensors = [states[key][b] for key in keys for b in sorted(states[key])]
    leaves = [*module.parameters(), x, *initial]
    grads = iter(torch.autograd.grad(loss_of(ref_out, ref_finals), tensors + leaves))
    for key in keys:
        name, k, d, t = key
        samples = sorted(states[key])
        want = torch.stack([next(grads) for _ in samples])
        got = trace.grad(name, k, d)[t, samples]
        assert (got - want).abs().max() <= 1e-10 * want.abs().max(), key
    assert trace.mask.sum() == sum(lengths)
    for leaf in leaves:  # what the step left in .grad: the parameters', the input's, the initial state's
        want = next(grads)
        assert (leaf.grad - want).abs().max() <= 1e-10 * want.abs().max()
    assert ("in place of torch's" in trace.meta["backward"]) == (backward == "gradlab")
