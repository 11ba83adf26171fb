"""A watched step under torch.autocast: the recurrent module is recorded in float32 against the
low-precision forward (gradlab/watch/precision.py); what it returns keeps autocast's dtype."""

import copy

import pytest
import torch
from torch import nn

import gradlab

#: bfloat16 keeps 8 significant bits: a relative rounding of 2^-8 ≈ 4e-3 per operation. The watched
#: step's recurrent module runs in float32 instead, so its parameter gradients differ from an
#: unwatched bfloat16 step's by that rounding accumulated over the sequence; measured here (torch 2.13,
#: CPU) at most 1.4e-2 of the largest entry, and the recorded ∂L/∂h_t 6e-3 from a float32 record.
BF16_TOLERANCE = 5e-2


class Model(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.RNN, nn.GRU])
def test_a_watched_autocast_step_records_in_float32_and_returns_autocasts_dtype(cls):
    model = Model(cls(4, 8, num_layers=2))
    twin = copy.deepcopy(model)
    x = torch.randn(12, 3, 4, generator=torch.Generator().manual_seed(1))
    with gradlab.watch(model, full=True) as w, torch.autocast("cpu", dtype=torch.bfloat16):
        watched = model(x)
        watched.float().pow(2).sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unwatched = twin(x)
        unwatched.float().pow(2).sum().backward()
    assert watched.dtype == unwatched.dtype  # the head sees what autocast would give it
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        err = (p.grad - q.grad).abs().max() / q.grad.abs().max()
        assert err <= BF16_TOLERANCE, (name, float(err))
    trace = w.traces[0]["rnn"]
    assert trace.meta["dtype"] == "float32"
    assert "ran under autocast" in trace.meta["autocast"]
    # the recorded gradients are those of the float32 recurrence: record() without autocast agrees
    # to the same tolerance (its seed, dL/doutput, differs only by the head's bfloat16 rounding)
    ref = gradlab.record(twin.rnn, x, lambda out: twin.head(out).pow(2).sum())
    got, want = trace.grad("h", 0), ref.grad("h", 0)
    assert (got - want).abs().max() <= BF16_TOLERANCE * want.abs().max()
