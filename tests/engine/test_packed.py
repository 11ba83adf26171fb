"""Packed batches of sequences of different lengths: forward, bptt and record, exact.

References: torch's own fused nn.RNN/LSTM/GRU on the same PackedSequence (outputs, final states,
and autograd's parameter and input gradients), and the autograd twin for every per-step gradient.
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import gradlab
from gradlab.engine.reference import autograd_reference, compare
from helpers import MODEL_CONFIGS, MODEL_IDS, make_model

TORCHABLE = [(c, i) for c, i in zip(MODEL_CONFIGS, MODEL_IDS) if c[1].get("nonlinearity") != "linear"]


def packed_batch(model, lengths, seed=0, enforce_sorted=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(max(lengths), len(lengths), model.input_size, generator=gen, dtype=torch.float64)
    return pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=enforce_sorted)


def like(packed: PackedSequence, width: int, gen) -> PackedSequence:
    return packed._replace(data=torch.randn(packed.data.shape[0], width, generator=gen, dtype=torch.float64))


def random_state(model, B, gen):
    parts = tuple(torch.randn(model.num_layers * model.num_directions, B, model.hidden_size, generator=gen,
                              dtype=torch.float64) for _ in model.state_names)
    return parts[0] if len(parts) == 1 else parts


@pytest.mark.parametrize("config", [c for c, _ in TORCHABLE], ids=[i for _, i in TORCHABLE])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
def test_forward_on_a_packed_batch_equals_torchs(config, bidirectional, enforce_sorted):
    kind, kwargs = config
    model = make_model(kind, kwargs, num_layers=2, bidirectional=bidirectional)
    lengths = [6, 4, 4, 1] if enforce_sorted else [4, 6, 1, 4]
    x = packed_batch(model, lengths, enforce_sorted=enforce_sorted)
    state = random_state(model, 4, torch.Generator().manual_seed(1))
    out, final = model(x, state)
    want_out, want_final = gradlab.to_torch(model)(x, state)
    assert isinstance(out, PackedSequence) and torch.equal(out.batch_sizes, want_out.batch_sizes)
    torch.testing.assert_close(out.data, want_out.data, atol=1e-14, rtol=0)
    for a, b in zip(*(((f,) if isinstance(f, torch.Tensor) else f) for f in (final, want_final))):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)


@pytest.mark.parametrize("config", [c for c, _ in TORCHABLE], ids=[i for _, i in TORCHABLE])
@pytest.mark.parametrize("log_domain", [False, True], ids=["plain", "log"])
def test_bptt_gradients_equal_autograd_through_torchs_fused_packed_module(config, log_domain):
    kind, kwargs = config
    model = make_model(kind, kwargs, num_layers=2, bidirectional=True)
    fused = gradlab.to_torch(model)
    gen = torch.Generator().manual_seed(2)
    x = packed_batch(model, [3, 7, 5])
    state, grad_state = random_state(model, 3, gen), random_state(model, 3, gen)
    data = x.data.clone().requires_grad_(True)
    out, final = fused(x._replace(data=data), state)
    grad_out = like(out, 8, gen)
    finals = (final,) if isinstance(final, torch.Tensor) else final
    ends = (grad_state,) if isinstance(grad_state, torch.Tensor) else grad_state
    loss = (out.data * grad_out.data).sum() + sum((f * g).sum() for f, g in zip(finals, ends))
    want = torch.autograd.grad(loss, [data, *fused.parameters()])
    res = gradlab.bptt(model, x, grad_out, state, grad_state, log_domain=log_domain)
    assert isinstance(res.input_grad, PackedSequence)
    torch.testing.assert_close(res.input_grad.data, want[0], atol=1e-13, rtol=1e-11)
    for (name, _), g in zip(fused.named_parameters(), want[1:]):
        torch.testing.assert_close(res.param_grads[name], g, atol=1e-13, rtol=1e-11, msg=name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.sampled_from(MODEL_CONFIGS), lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       layers=st.integers(1, 2), bidirectional=st.booleans(), with_final=st.booleans(), log_domain=st.booleans(),
       seed=st.integers(0, 10_000))
def test_every_per_step_gradient_of_a_packed_batch_equals_autograd(config, lengths, layers, bidirectional, with_final,
                                                                    log_domain, seed):
    kind, kwargs = config
    model = make_model(kind, kwargs, num_layers=layers, bidirectional=bidirectional, seed=seed % 100)
    gen = torch.Generator().manual_seed(seed)
    x = packed_batch(model, lengths, seed)
    grad_out = like(model(x)[0], 4 * model.num_directions, gen)
    grad_state = random_state(model, len(lengths), gen) if with_final else None
    res = gradlab.bptt(model, x, grad_out, grad_state=grad_state, log_domain=log_domain)
    ref = autograd_reference(model, x, grad_out, grad_state=grad_state)
    bad = [r for r in compare(res, ref) if not r[2] <= 1e-10]
    assert not bad
    np.testing.assert_array_equal(res.mask.sum(axis=0), lengths)


def test_padded_positions_are_absent_never_zero_or_nan():
    model = make_model("lstm", {}, bidirectional=True)
    x = packed_batch(model, [5, 2, 3])
    trace = gradlab.record(model, x, lambda out, final: out.data.pow(2).sum() + final[1].sum(), full=True)
    assert trace.mask.tolist() == [[True] * 3, [True] * 3, [True, False, True], [True, False, False],
                                   [True, False, False]]
    for name in ("h", "c"):
        for d in (0, 1):
            for norms in (trace.grad_norms(name, 0, d), trace.log10_grad_norms(name, 0, d)):
                assert isinstance(norms, np.ma.MaskedArray) and (norms.mask == ~trace.mask).all()
                assert np.isfinite(norms.compressed()).all()  # every existing state has a finite value
            assert (trace.grad(name, 0, d)[~torch.as_tensor(trace.mask)] == 0).all()


def test_the_reverse_direction_starts_at_each_samples_own_last_position():
    model = make_model("gru", {}, bidirectional=True)
    x = packed_batch(model, [4, 2])
    seen = []
    with gradlab.attached([(model.hook_point("h", 0, 1), lambda h, t: seen.append(t))]):
        model(x)
    first = seen[0]
    assert first.tolist() == [3, 1]  # the first reverse step reads each sample's last position
    assert [t if isinstance(t, int) else t.tolist() for t in seen[2:]] == [[1, 2], [0, 3]]
    # with a loss on the reverse direction's output at position 0 only, its gradient reaches every
    # existing position, and the explicit part at position 0 includes dL/dh_n there
    trace = gradlab.record(model, x, lambda out, final: final[1].sum(), full=True)
    rev = trace.grad_norms("h", 0, 1)
    assert (rev.compressed() > 0).all()
    np.testing.assert_allclose(trace.explicit_grad_norms(0, 1)[0], [2.0, 2.0])  # ‖(1, 1, 1, 1)‖ at t = 0


def test_record_and_bptt_agree_on_a_packed_batch_and_the_trace_round_trips(tmp_path):
    model = make_model("lstm", {}, num_layers=2, bidirectional=True)
    x = packed_batch(model, [6, 3, 1, 4])
    trace = gradlab.record(model, x, lambda out: out.data.tanh().sum())
    out = model(x)[0]
    data = out.data.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(data.tanh().sum(), data)
    res = gradlab.bptt(model, x, out._replace(data=g), log_domain=True)
    for name in ("h", "c"):
        for k in range(2):
            for d in range(2):
                np.testing.assert_allclose(trace.log10_grad_norms(name, k, d).compressed(),
                                           res.log10_grad_norms(name, k, d).compressed(), atol=1e-12)
    again = gradlab.Trace.load(trace.save(tmp_path / "packed.npz"))
    assert (again.mask == trace.mask).all() and isinstance(again.grad_norms("c", 1, 1), np.ma.MaskedArray)


def test_a_gradient_that_is_not_packed_like_the_output_is_refused():
    model = make_model("gru", {})
    x = packed_batch(model, [3, 2])
    with pytest.raises(ValueError, match="a PackedSequence like the input"):
        gradlab.bptt(model, x, torch.zeros(3, 2, 4, dtype=torch.float64))
