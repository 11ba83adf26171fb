"""The fused forward: torch's kernels layer by layer and the tape rebuilt from their states equal
the architecture's own eager forward sweep, for every architecture and layout (float64)."""

import subprocess
import sys

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import gradlab
from gradlab.engine.forward import forward_tapes
from gradlab.engine.fused import fused_function
from gradlab.engine.reference import autograd_reference
from gradlab.models.recurrent import MODEL_CLASSES

DT = torch.float64
CONFIGS = [("srn", {"nonlinearity": "tanh"}), ("srn", {"nonlinearity": "relu"}), ("lstm", {}),
           ("lstm", {"proj_size": 2}), ("gru", {})]


@pytest.mark.parametrize("kind,kwargs", CONFIGS, ids=["srn-tanh", "srn-relu", "lstm", "lstm-proj", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_the_tape_from_torchs_fused_forward_equals_the_eager_sweep(kind, kwargs, bidirectional, packed, monkeypatch):
    """Where the compiled forward cannot run (GRADLAB_COMPILED=0 here), torch's fused layers and the tape
    rebuilt from their states give the eager sweep's tape (the compiled forward: test_forward_steps.py)."""
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    torch.manual_seed(0)
    model = MODEL_CLASSES[kind](3, 5, num_layers=2, bidirectional=bidirectional, dtype=DT,
                                                         **kwargs)
    x = torch.randn(7, 4, 3, dtype=DT)
    lengths = torch.tensor([7, 2, 5, 1])
    layout = model.layout_of(pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x)
    x_tm = layout.time_major(pack_padded_sequence(x, lengths, enforce_sorted=False)) if packed else x
    state = tuple(torch.randn(2 * model.num_directions, 4, size, dtype=DT) for size in model.state_sizes.values())
    fused = forward_tapes(model, x_tm, state, packing=layout.packing)[1]
    eager = forward_tapes(model, x_tm, state, packing=layout.packing, fused=False)[1]
    valid = (torch.arange(7).unsqueeze(1) < (lengths if packed else torch.full((4,), 7))).unsqueeze(-1)
    for a, b in zip(fused, eager):
        for field in ("h", "c", "gates", "dphi"):
            if hasattr(b, field):
                got, want = getattr(a, field), getattr(b, field)
                rows = valid if field in ("gates", "dphi") else torch.cat((torch.ones(1, 4, 1, dtype=bool), valid))
                torch.testing.assert_close(got * rows, want * rows, rtol=1e-12, atol=1e-13, msg=field)


def test_the_linear_srn_has_no_fused_kernel_and_runs_the_eager_sweep():
    model = gradlab.SRN(3, 4, nonlinearity="linear", dtype=DT)
    assert fused_function(model) is None
    x = torch.randn(5, 2, 3, dtype=DT)
    trace = gradlab.bptt(model, x, torch.ones(5, 2, 4, dtype=DT))
    assert trace.grad("h").shape == (5, 2, 4)


FRESH_PROCESS = """
import torch, gradlab
torch.set_num_threads(2)
torch.manual_seed(0)
model = torch.nn.LSTM(3, 16)
x = torch.randn(300, 8, 3)
{call}
tiny = torch.full((1 << 20,), 1e-40)  # float32 subnormals, split across both threads
kept = (tiny * 1.0).view(torch.int32) == tiny.view(torch.int32)  # bits: a flushing thread would read them as 0
print(int(kept.sum()), kept.numel())
"""


@pytest.mark.parametrize("call", [
    "gradlab.bptt(model, x, torch.ones(300, 8, 16), log_domain=True)",
    "gradlab.record(model, x, lambda out: out[-1].sum())",
    "gradlab.checkpointed_norms(gradlab.from_torch(model), lambda t0, t1: x[t0:t1], "
    "lambda t0, t1, h: torch.ones_like(h), 300, 8, progress=False)",
], ids=["bptt", "record", "checkpointed"])
def test_every_thread_keeps_its_subnormals_after_the_first_sweep_of_a_process(call):
    """torch's pool threads are born with the floating-point setting of the thread that starts them:
    in a fresh process where a log-domain sweep is the first work on two threads, no thread may be
    left flushing subnormal floats (the compiled steps flush their own threads and restore them)."""
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS.format(call=call)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    kept, total = map(int, out.stdout.split())
    assert kept == total


def test_record_is_one_pass_and_leaves_parameter_gradients_alone():
    module = torch.nn.LSTM(3, 4, num_layers=2, dtype=DT)
    x = torch.randn(30, 2, 3, dtype=DT)
    trace = gradlab.record(module, x, lambda out: out[-1].pow(2).sum())
    assert "one hand-derived backward sweep in the log domain" in trace.meta["engine"]
    assert all(p.grad is None for p in module.parameters())
    twin = gradlab.from_torch(module)
    want = autograd_reference(
        twin, x, torch.cat((torch.zeros(29, 2, 4, dtype=DT), 2 * module(x)[0][-1:].detach())))
    for k in range(2):
        torch.testing.assert_close(trace.grad("c", k), want.grad("c", k), rtol=1e-12, atol=1e-14)
