"""Trace: the one per-step record — every engine returns it, it round-trips through disk bit for
bit, and it says what it holds in one short line."""

import numpy as np
import pytest
import torch

import gradlab
from gradlab.engine.checkpointed import checkpointed_norms
from gradlab.engine.trace import Trace
from helpers import make_input, make_model


def assert_identical(a: Trace, b: Trace) -> None:
    """Every array of the archive equal, value and dtype, and every tensor of the same dtype."""
    left, right = a.to_arrays(), b.to_arrays()
    assert left.keys() == right.keys()
    for key in left:
        assert left[key].dtype == right[key].dtype, key
        assert np.array_equal(left[key], right[key], equal_nan=left[key].dtype.kind == "f"), key
    for group in ("grads", "param_grads", "initial_grads"):
        for name, t in (getattr(a, group) or {}).items():
            assert getattr(b, group)[name].dtype == t.dtype and torch.equal(getattr(b, group)[name], t.cpu())


def traces():
    lstm = make_model("lstm", {}, num_layers=2, batch_first=True)
    x = make_input(lstm, T=7, B=3)
    g = torch.randn(3, 7, 4, dtype=torch.float64)
    srn32 = make_model("srn", {"nonlinearity": "relu"}, dtype=torch.float32)
    gru = make_model("gru", {})
    yield "bptt (every field)", gradlab.bptt(lstm, x, g, log_domain=True)
    bi = make_model("gru", {}, num_layers=2, bidirectional=True)
    yield "bidirectional", gradlab.record(bi, make_input(bi), lambda o: o[0].sum() + o[-1].sum())
    yield "record, float32", gradlab.record(srn32, make_input(srn32), lambda o: o[-1].sum())
    yield "record, norms only", gradlab.record(gru, make_input(gru), lambda o: o.pow(2).sum(), full=False)
    x_gru = make_input(gru, T=9)
    yield "checkpointed", checkpointed_norms(gru, lambda a, b: x_gru[a:b], lambda a, b, out: torch.ones_like(out),
                                             9, 3, progress=False)


@pytest.mark.parametrize("label,trace", list(traces()), ids=lambda v: v if isinstance(v, str) else "")
def test_save_then_load_gives_back_every_field_bit_for_bit(label, trace, tmp_path):
    again = Trace.load(trace.save(tmp_path / "t.npz"))
    assert_identical(trace, again)
    assert (again.kind, again.hidden_size, again.loss, again.meta) == (trace.kind, trace.hidden_size, trace.loss,
                                                                       trace.meta)
    assert again.names == trace.names and again.mask.dtype == bool and again.mask.shape == (trace.num_steps,
                                                                                           trace.batch_size)
    np.testing.assert_array_equal(again.grad_norms("h", 0), trace.grad_norms("h", 0))


def test_save_refuses_to_overwrite_unless_asked_and_load_refuses_other_files(tmp_path):
    _, trace = next(traces())
    path = trace.save(tmp_path / "t.npz")
    with pytest.raises(FileExistsError):
        trace.save(path)
    trace.save(path, overwrite=True)
    (tmp_path / "other.npz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a readable gradlab trace"):
        Trace.load(tmp_path / "other.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a readable gradlab trace"):
        Trace.load(tmp_path / "foreign.npz")


def test_a_bfloat16_tensor_survives_the_round_trip(tmp_path):
    _, trace = next(traces())
    trace.param_grads["weight_hh_l0"] = trace.param_grads["weight_hh_l0"].to(torch.bfloat16)
    again = Trace.load(trace.save(tmp_path / "t.npz"))
    assert again.param_grads["weight_hh_l0"].dtype == torch.bfloat16
    assert torch.equal(again.param_grads["weight_hh_l0"], trace.param_grads["weight_hh_l0"])


def test_repr_is_one_short_line_saying_what_is_kept():
    lstm = gradlab.LSTM(16, 64, num_layers=2)
    trace = gradlab.record(lstm, torch.randn(200, 8, 16), lambda o: o[-1].pow(2).sum())
    text = repr(trace)
    assert "\n" not in text and len(text) < 160
    assert text.startswith("Trace(lstm, layers=2, directions=1, T=200, B=8, H=64, states=h,c, "
                           "kept=norms+log10 norms+tensors, loss=")
    lean = gradlab.record(lstm, torch.randn(5, 2, 16), lambda o: o.sum(), full=False, log_domain=False)
    assert "kept=norms," in repr(lean)


def test_every_engine_returns_a_trace_and_says_which_engine_ran():
    model = make_model("lstm", {}, num_layers=2)
    x = make_input(model)
    engines = {
        "record": gradlab.record(model, x, lambda o: o[-1].sum()),
        "bptt": gradlab.bptt(model, x, torch.ones(6, 3, 4, dtype=torch.float64)),
        "checkpointed": checkpointed_norms(model, lambda a, b: x[a:b], lambda a, b, o: torch.ones_like(o), 6, 3,
                                           progress=False),
    }
    for label, trace in engines.items():
        assert isinstance(trace, Trace)
        assert trace.grad_norms("c", 0).shape == (6, 3) and trace.log10_grad_norms("h").shape == (6, 3)
        assert label in trace.meta["engine"] or ("gradlab." + label) in trace.meta["engine"]
    # the three engines see the same total gradient where their losses agree
    np.testing.assert_allclose(engines["checkpointed"].log10_grad_norms("c", 0),
                               engines["bptt"].log10_grad_norms("c", 0), atol=1e-12)


def test_asking_for_what_a_trace_lacks_says_what_it_has():
    trace = gradlab.record(make_model("gru", {}), make_input(make_model("gru", {})), lambda o: o.sum(), full=False)
    with pytest.raises(KeyError, match="a gru has no 'c' state; this trace records h"):
        trace.grad_norms("c")
    with pytest.raises(ValueError, match="full=True"):
        trace.grad("h")
    with pytest.raises(IndexError, match="direction 1 out of range"):
        trace.grad_norms("h", direction=1)
    with pytest.raises(IndexError, match="layer 3 out of range"):
        trace.grad_norms("h", layer=3)
