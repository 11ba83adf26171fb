"""The compiled forward sweeps (gradlab/models/architectures/forward_steps.cpp) against the eager
steps they replace (GRADLAB_COMPILED=0): the same tapes, float64 to 1e-12 and float32 as accurate
against float64 as the eager steps, for every architecture, both directions, padded and packed."""

import shutil

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import gradlab
from gradlab.engine.forward import forward_tapes
from gradlab.models.recurrent import MODEL_CLASSES
from helpers import counted_kernels

pytestmark = pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")
CONFIGS = [("srn", {"nonlinearity": "tanh"}), ("srn", {"nonlinearity": "relu"}), ("srn", {"nonlinearity": "linear"}),
           ("lstm", {}), ("gru", {})]
IDS = ["srn-tanh", "srn-relu", "srn-linear", "lstm", "gru"]
FIELDS = ("h", "c", "gates", "dphi")


def problem(kind, kwargs, bidirectional, packed, dtype, T=30, B=5):
    """A 2-layer model and its input and initial state, time-major, with a packing for packed."""
    torch.manual_seed(0)
    model = MODEL_CLASSES[kind](3, 6, num_layers=2, bidirectional=bidirectional, dtype=torch.float64, **kwargs)
    x = torch.randn(T, B, 3, dtype=torch.float64)
    lengths = torch.tensor([T, 2, 17, 1, 9][:B])
    layout = model.layout_of(pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x)
    x_tm = layout.time_major(pack_padded_sequence(x, lengths, enforce_sorted=False)) if packed else x
    state = tuple(torch.randn(2 * model.num_directions, B, size, dtype=torch.float64)
                  for size in model.state_sizes.values())
    valid = (torch.arange(T).unsqueeze(1) < (lengths if packed else torch.full((B,), T))).unsqueeze(-1)
    return model.to(dtype), x_tm.to(dtype), tuple(s.to(dtype) for s in state), layout.packing, valid


def tapes(model, x_tm, state, packing, monkeypatch, compiled_steps: bool):
    monkeypatch.setenv("GRADLAB_COMPILED", "1" if compiled_steps else "0")
    return forward_tapes(model, x_tm, state, packing=packing, fused=False)[1]


def fields(a, b, valid):
    """(name, a's, b's) of every tape field, zero at the padded positions (where no state exists)."""
    for field in FIELDS:
        if hasattr(b, field):
            per_step = field in ("gates", "dphi")
            rows = valid if per_step else torch.cat((torch.ones(1, *valid.shape[1:], dtype=bool), valid))
            yield field, getattr(a, field) * rows, getattr(b, field) * rows


@pytest.mark.parametrize("kind,kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_the_compiled_forward_equals_the_eager_steps_in_float64(kind, kwargs, bidirectional, packed, monkeypatch):
    model, x_tm, state, packing, valid = problem(kind, kwargs, bidirectional, packed, torch.float64)
    calls = counted_kernels(monkeypatch)
    fast = tapes(model, x_tm, state, packing, monkeypatch, True)
    assert calls == {f"{kind}_forward": 2 * model.num_directions}  # every layer and direction, compiled
    eager = tapes(model, x_tm, state, packing, monkeypatch, False)
    for a, b in zip(fast, eager):
        for field, got, want in fields(a, b, valid):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13, msg=field)


@pytest.mark.parametrize("kind,kwargs", CONFIGS, ids=IDS)
def test_compiled_float32_forward_is_as_accurate_as_the_eager_steps(kind, kwargs, monkeypatch):
    """float32 against the float64 sweep: the compiled forward's worst error is at most twice the eager
    steps' own (they round differently: other nonlinearities, another order of the product's sums)."""
    truth = tapes(*problem(kind, kwargs, True, False, torch.float64, T=60)[:4], monkeypatch, False)
    single = problem(kind, kwargs, True, False, torch.float32, T=60)
    fast, eager = (tapes(*single[:4], monkeypatch, c) for c in (True, False))
    for a, b, want in zip(fast, eager, truth):
        for field in FIELDS:
            if hasattr(want, field):
                exact = getattr(want, field)
                err = lambda tape: float((getattr(tape, field).double() - exact).abs().max())  # noqa: E731
                assert err(b) < 1e-4  # the comparison means something: 60 steps, two layers of float32
                assert err(a) <= 2 * err(b) + torch.finfo(torch.float32).eps, field


def test_record_runs_the_compiled_forward_and_matches_torchs_output(monkeypatch):
    """record() on torch's nn.LSTM: the compiled forward's output is torch's fused output, to float32
    rounding, and the per-step gradients agree with the eager steps'."""
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 16, num_layers=2)
    x = torch.randn(80, 3, 4)
    seen = []
    calls = counted_kernels(monkeypatch)
    fast = gradlab.record(module, x, lambda out: seen.append(out.detach()) or out[-1].pow(2).sum(), full=True)
    assert calls["lstm_forward"] == 2  # both layers' forward compiled (and their backward sweeps)
    torch.testing.assert_close(seen[0], module(x)[0].detach(), rtol=0, atol=1e-6)
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    eager = gradlab.record(module, x, lambda out: out[-1].pow(2).sum(), full=True)
    for name in ("h", "c"):
        torch.testing.assert_close(fast.grads[name], eager.grads[name], rtol=1e-4, atol=1e-7)
