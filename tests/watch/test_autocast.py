"""A watched step under torch.autocast: the fused low-precision forward and backward run as unwatched;
the per-step gradients are recorded in float32 from the gradients that reached the outputs
(gradlab/watch/precision.py)."""

import copy

import pytest
import torch
from torch import nn

import gradlab

#: bfloat16 keeps 8 significant bits: a relative rounding of 2^-8 ≈ 4e-3 per operation. The recorded
#: ∂L/∂h_t are the float32 recurrence's, seeded with the bfloat16 gradients at the outputs, so they
#: differ from a float32 record by that rounding accumulated over a few operations; measured here
#: (torch 2.13, CPU) at most 9.2e-3 of the largest entry.
BF16_TOLERANCE = 2e-2


class Model(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out)


def runs_under_bfloat16_autocast(cls) -> bool:
    """Whether torch's own fused module runs under CPU bfloat16 autocast here: oneDNN has no bfloat16
    LSTM primitive on CPUs without AVX-512 (seen on an AMD EPYC: "could not create a primitive
    descriptor for the LSTM forward propagation primitive"), unwatched as much as watched."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cls(4, 8)(torch.randn(3, 2, 4))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("cls", [nn.LSTM, nn.RNN, nn.GRU])
@pytest.mark.parametrize("backward", ["torch", "gradlab"])
def test_a_watched_autocast_step_trains_as_unwatched_and_records_in_float32(cls, backward):
    """backward="gradlab" cannot stand in for the low-precision backward: such steps keep torch's."""
    if not runs_under_bfloat16_autocast(cls):
        pytest.skip(f"torch's {cls.__name__} does not run under bfloat16 autocast on this CPU (no oneDNN primitive)")
    model = Model(cls(4, 8, num_layers=2))
    twin = copy.deepcopy(model)
    x = torch.randn(12, 3, 4, generator=torch.Generator().manual_seed(1))
    with gradlab.watch(model, full=True, backward=backward) as w, torch.autocast("cpu", dtype=torch.bfloat16):
        watched = model(x)
        watched.float().pow(2).sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unwatched = twin(x)
        unwatched.float().pow(2).sum().backward()
    assert watched.dtype == unwatched.dtype  # the head sees what autocast would give it
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(p.grad, q.grad), name  # the watched step trains exactly as the unwatched one
    trace = w.traces[0]["rnn"]
    assert trace.meta["dtype"] == "float32"
    assert "ran under autocast" in trace.meta["autocast"]
    assert trace.meta["backward"].startswith("torch's fused backward")
    # the recorded gradients are those of the float32 recurrence: record() without autocast agrees
    # to bfloat16's accuracy (its seed, dL/doutput, differs by the bfloat16 forward's rounding)
    ref = gradlab.record(twin.rnn, x, lambda out: twin.head(out).pow(2).sum())
    got, want = trace.grad("h", 0), ref.grad("h", 0)
    assert (got - want).abs().max() <= BF16_TOLERANCE * want.abs().max()
