"""bptt() — the backward pass from the derived recurrences — against autograd, in float64."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradlab
from helpers import CUDA, MODEL_CONFIGS, MODEL_IDS, make_input, make_model
from gradlab.engine.reference import autograd_reference, compare
from gradlab.engine.bptt import bptt

REL_TOL = 1e-10


def random_like_state(model, B, gen, scale=1.0):
    shape = (model.num_layers * model.num_directions, B, model.hidden_size)
    parts = [scale * torch.randn(shape, generator=gen, dtype=torch.float64) for _ in model.state_names]
    return parts[0] if len(parts) == 1 else tuple(parts)


def assert_agree(result, reference, tol=REL_TOL):
    rows = compare(result, reference)
    bad = [r for r in rows if not r[2] <= tol]
    assert not bad, f"relative errors above {tol}: {bad}"
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=st.sampled_from(MODEL_CONFIGS),
    T=st.integers(1, 40),
    B=st.integers(1, 4),
    I=st.integers(1, 5),
    H=st.integers(1, 6),
    layers=st.integers(1, 3),
    bias=st.booleans(),
    batch_first=st.booleans(),
    bidirectional=st.booleans(),
    loss=st.sampled_from(["last", "all", "random"]),
    with_state=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_bptt_equals_autograd_on_random_problems(config, T, B, I, H, layers, bias, batch_first, bidirectional, loss,
                                                 with_state, seed):
    kind, kwargs = config
    model = make_model(kind, kwargs, input_size=I, hidden_size=H, num_layers=layers, bias=bias,
                       batch_first=batch_first, seed=seed % 1000, bidirectional=bidirectional)
    gen = torch.Generator().manual_seed(seed)
    shape_x = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape_x, generator=gen, dtype=torch.float64)
    DH = model.num_directions * H
    grad_out = torch.zeros(shape_x[:2] + (DH,), dtype=torch.float64)
    if loss == "last":
        idx = (slice(None), -1) if batch_first else (-1,)
        grad_out[idx] = torch.randn(B, DH, generator=gen, dtype=torch.float64)
    else:
        grad_out.normal_(generator=gen)
    state = random_like_state(model, B, gen, 0.5) if with_state else None
    grad_state = random_like_state(model, B, gen) if loss == "random" else None
    assert_agree(bptt(model, x, grad_out, state, grad_state),
                 autograd_reference(model, x, grad_out, state, grad_state))


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
def test_bptt_returns_torchs_names_and_shapes(kind, kwargs):
    model = make_model(kind, kwargs, num_layers=2, batch_first=True)
    x = make_input(model, T=5, B=3)
    res = bptt(model, x, torch.ones(3, 5, 4, dtype=torch.float64))
    assert list(res.param_grads) == [n for n, _ in model.named_parameters()]
    assert all(res.param_grads[n].shape == p.shape for n, p in model.named_parameters())
    assert res.input_grad.shape == x.shape and res.initial_grad("h").shape == (2, 3, 4)
    assert res.num_layers == 2 and res.grad("h", 0).shape == (5, 3, 4)  # time-major inside the result
    assert res.names == model.state_names and res.has_tensors
    if kind == "lstm":
        assert res.initial_grad("c").shape == (2, 3, 4) and res.grad("c", 1).shape == (5, 3, 4)
    else:
        with pytest.raises(KeyError, match="no 'c' state"):
            res.grad("c")


def test_bptt_handles_unbatched_input():
    model = make_model("lstm", {}, num_layers=2)
    x = make_input(model, B=1)
    g = torch.randn(6, 1, 4, dtype=torch.float64)
    one = bptt(model, x[:, 0], g[:, 0])
    batched = bptt(model, x, g)
    torch.testing.assert_close(one.input_grad, batched.input_grad[:, 0])
    assert one.initial_grad("h").shape == (2, 4) and one.initial_grad("c").shape == (2, 4)


def test_bptt_runs_without_autograd_and_leaves_grads_alone():
    model = make_model("gru", {})
    x = make_input(model)
    res = bptt(model, x, torch.ones(6, 3, 4, dtype=torch.float64))
    assert not res.input_grad.requires_grad and all(not g.requires_grad for g in res.param_grads.values())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("segment", [1, 3])
def test_backward_step_by_step_equals_the_whole_sequence(kind, kwargs, segment):
    """Split the sequence into segments; run bptt on each from the last to the first, carrying
    (∂L/∂h, ∂L/∂c) across the boundary as grad_state. Every quantity equals the whole-sequence run."""
    model = make_model(kind, kwargs, num_layers=2)
    T, B = 7, 3
    x = make_input(model, T=T, B=B)
    gen = torch.Generator().manual_seed(5)
    grad_out = torch.randn(T, B, 4, generator=gen, dtype=torch.float64)
    whole = bptt(model, x, grad_out)
    # forward once to get the state entering each segment
    bounds = list(range(0, T, segment)) + [T]
    states, state = [], None
    for a, b in zip(bounds[:-1], bounds[1:]):
        states.append(state)
        state = model(x[a:b], state)[1]
    carry = None
    dh = [torch.empty(T, B, 4, dtype=torch.float64) for _ in range(2)]
    dxs, params = [], {n: 0 for n in whole.param_grads}
    for (a, b), state in reversed(list(zip(zip(bounds[:-1], bounds[1:]), states))):
        part = bptt(model, x[a:b], grad_out[a:b], state, carry)
        carry = part.initial_grad("h") if kind != "lstm" else (part.initial_grad("h"), part.initial_grad("c"))
        for k in range(2):
            dh[k][a:b] = part.grad("h", k)
        dxs.insert(0, part.input_grad)
        params = {n: params[n] + g for n, g in part.param_grads.items()}
    torch.testing.assert_close(torch.cat(dxs), whole.input_grad, atol=1e-13, rtol=1e-12)
    for k in range(2):
        torch.testing.assert_close(dh[k], whole.grad("h", k), atol=1e-13, rtol=1e-12)
    for n, g in whole.param_grads.items():
        torch.testing.assert_close(params[n], g, atol=1e-12, rtol=1e-11)
    first = carry if kind != "lstm" else carry[0]
    torch.testing.assert_close(first, whole.initial_grad("h"), atol=1e-13, rtol=1e-12)


def test_linear_srn_matches_the_closed_form():
    """For a linear SRN, ∂L/∂h_t = Σ_k ∂⁺L/∂h_{t+k} W_hh^k (row vectors), i.e. (W_hhᵀ)^k in columns."""
    model = make_model("srn", {"nonlinearity": "linear"}, hidden_size=5)
    T, B = 12, 2
    x = make_input(model, T=T, B=B)
    gen = torch.Generator().manual_seed(3)
    explicit = torch.randn(T, B, 5, generator=gen, dtype=torch.float64)
    res = bptt(model, x, explicit)
    W = model.weight_hh_l0.detach()
    powers = [torch.eye(5, dtype=torch.float64)]
    for _ in range(T):
        powers.append(powers[-1] @ W)
    for t in range(T):
        want = sum(explicit[t + k] @ powers[k] for k in range(T - t))
        torch.testing.assert_close(res.grad("h", 0)[t], want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_record_and_bptt_agree(kind, kwargs, num_layers, batch_first, bidirectional):
    model = make_model(kind, kwargs, num_layers=num_layers, batch_first=batch_first, bidirectional=bidirectional)
    x = make_input(model, T=8, B=3)
    weights = torch.linspace(-1, 1, 4 * model.num_directions, dtype=torch.float64)
    loss_fn = lambda out: (out * weights).tanh().sum()  # noqa: E731
    trace = gradlab.record(model, x, loss_fn, full=True)
    out = model(x)[0].detach().requires_grad_(True)
    (grad_out,) = torch.autograd.grad(loss_fn(out), out)
    res = bptt(model, x, grad_out)
    for k in range(num_layers):
        for d in range(model.num_directions):
            for name in model.state_names:
                torch.testing.assert_close(res.grad(name, k, d), trace.grad(name, k, d), atol=1e-13, rtol=1e-11)
            np.testing.assert_allclose(res.explicit_grad_norms(k, d), trace.explicit_grad_norms(k, d), atol=1e-13)
    torch.testing.assert_close(res.initial_grad("h"), trace.initial_grads["h"], atol=1e-13, rtol=1e-11)


def test_float32_is_supported_and_close_to_float64():
    model64 = make_model("lstm", {}, num_layers=2)
    model32 = copy.deepcopy(model64).float()
    x = make_input(model64)
    g = torch.randn(6, 3, 4, dtype=torch.float64)
    r64, r32 = bptt(model64, x, g), bptt(model32, x.float(), g.float())
    assert r32.input_grad.dtype == torch.float32
    np.testing.assert_allclose(r32.param_grads["weight_hh_l0"].numpy(), r64.param_grads["weight_hh_l0"].numpy(),
                               rtol=1e-4, atol=1e-5)


@CUDA
@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bptt_equals_autograd_on_cuda(kind, kwargs, dtype):
    model = make_model(kind, kwargs, num_layers=2, device="cuda", dtype=dtype)
    x = make_input(model, T=10, B=3)
    g = torch.randn(10, 3, 4, dtype=dtype, device="cuda")
    tol = REL_TOL if dtype == torch.float64 else 1e-4
    res = bptt(model, x, g)
    assert res.input_grad.is_cuda
    assert_agree(res, autograd_reference(model, x, g), tol)


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
def test_step_jacobians_equal_autograd(kind, kwargs):
    """(JAC-SRN), (JAC-LSTM), (JAC-GRU) against torch.autograd.functional.jacobian of one step."""
    model = make_model(kind, kwargs, input_size=3, hidden_size=5)
    arch = model.architecture
    w_ih, w_hh, b_ih, b_hh = model.layer_parameters(0)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 2, 3, generator=gen, dtype=torch.float64)
    state = tuple(0.5 * torch.randn(2, 5, generator=gen, dtype=torch.float64) for _ in model.state_names)
    x_proj = torch.nn.functional.linear(x, w_ih, b_ih)
    with torch.no_grad():
        tape = arch.forward_sweep(x_proj.clone(), state, w_hh, b_hh)  # the sweep's own: it may form the tape there
    t = 2
    J = list(arch.step_jacobians(tape, w_hh.detach()))[t]
    tapes = (tape.h,) if len(model.state_names) == 1 else (tape.h, tape.c)
    for b in range(2):
        def step(s):  # s: [S], the state of sample b before step t
            return torch.cat(arch.step(x_proj[t, b], s.split(5), w_hh, b_hh))

        s_prev = torch.cat([p[t, b] for p in tapes])
        want = torch.autograd.functional.jacobian(step, s_prev)
        torch.testing.assert_close(J[b], want, atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS[:2] + MODEL_CONFIGS[3:], ids=MODEL_IDS[:2] + MODEL_IDS[3:])
@pytest.mark.parametrize("log_domain", [False, True], ids=["plain", "log"])
def test_parameter_and_input_gradients_equal_autograd_through_torchs_fused_module(kind, kwargs, log_domain):
    """An independent reference: torch's own nn.RNN/LSTM/GRU (bidirectional, two layers, batch_first,
    with an initial state and a loss on the final state), differentiated by autograd."""
    model = make_model(kind, kwargs, num_layers=2, batch_first=True, bidirectional=True)
    fused = gradlab.to_torch(model)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 6, 3, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(3, 6, 8, generator=gen, dtype=torch.float64)
    state, grad_state = random_like_state(model, 3, gen, 0.5), random_like_state(model, 3, gen)
    x_leaf = x.clone().requires_grad_(True)
    out, final = fused(x_leaf, state)
    finals = (final,) if isinstance(final, torch.Tensor) else final
    ends = (grad_state,) if isinstance(grad_state, torch.Tensor) else grad_state
    loss = (out * grad_out).sum() + sum((f * g).sum() for f, g in zip(finals, ends))
    names = [n for n, _ in fused.named_parameters()]
    want = torch.autograd.grad(loss, [x_leaf, *fused.parameters()])
    res = bptt(model, x, grad_out, state, grad_state, log_domain=log_domain)
    torch.testing.assert_close(res.input_grad, want[0], atol=1e-13, rtol=1e-11)
    for name, g in zip(names, want[1:]):
        torch.testing.assert_close(res.param_grads[name], g, atol=1e-13, rtol=1e-11, msg=name)


def test_the_reverse_direction_runs_from_the_last_position():
    """With the loss on the output at position 0 only, the reverse direction's gradient is non-zero
    at every position (position 0 is its last step) and the forward direction's only at position 0."""
    model = make_model("gru", {}, bidirectional=True)
    x = make_input(model, T=5, B=2)
    g = torch.zeros(5, 2, 8, dtype=torch.float64)
    g[0] = 1.0
    res = bptt(model, x, g)
    forward, reverse = res.grad_norms("h", 0, 0), res.grad_norms("h", 0, 1)
    assert (forward[0] > 0).all() and (forward[1:] == 0).all()
    assert (reverse > 0).all()
    assert res.explicit_grad_norms(0, 1)[0].tolist() == pytest.approx([2.0, 2.0])  # ‖(1, 1, 1, 1)‖


def test_the_gradient_on_the_final_state_is_part_of_the_explicit_gradient_at_the_last_step():
    model = make_model("lstm", {}, num_layers=2, bidirectional=True)
    x = make_input(model, T=5, B=2)
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(5, 2, 8, generator=gen, dtype=torch.float64)
    grad_state = random_like_state(model, 2, gen)
    for log_domain in (False, True):
        res = bptt(model, x, g, grad_state=grad_state, log_domain=log_domain)
        h_n = grad_state[0].view(2, 2, 2, 4)
        top = torch.stack([g[..., :4], g[..., 4:]])  # [D, T, B, H] through the output
        for d, last in ((0, 4), (1, 0)):
            want = top[d].clone()
            want[last] += h_n[1, d]
            torch.testing.assert_close(res.explicit_grad(1, d), want, atol=1e-14, rtol=1e-13)
            np.testing.assert_allclose(res.explicit_log10_grad_norms(1, d), np.log10(want.norm(dim=-1).numpy()),
                                       atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 7, 20])
def test_the_lstm_sweep_forms_its_local_derivatives_chunk_by_chunk_without_changing_anything(chunk, monkeypatch):
    """The derivatives are formed DERIVATIVE_CHUNK steps at a time: any chunk size (one step, one not
    dividing T, all of T) gives bit for bit the same sweep, and it equals autograd."""
    from gradlab.models.architectures import lstm

    torch.manual_seed(0)
    model = gradlab.LSTM(3, 5, num_layers=2, dtype=torch.float64)
    x = torch.randn(20, 2, 3, dtype=torch.float64)
    grad_output = torch.randn(20, 2, 5, dtype=torch.float64)
    monkeypatch.setattr(lstm, "DERIVATIVE_CHUNK", 10**9)
    whole = bptt(model, x, grad_output, log_domain=True)
    monkeypatch.setattr(lstm, "DERIVATIVE_CHUNK", chunk)
    chunked = bptt(model, x, grad_output, log_domain=True)
    for name in ("h", "c"):
        for k in range(2):
            assert torch.equal(chunked.grad(name, k), whole.grad(name, k))
    assert all(torch.equal(chunked.param_grads[n], whole.param_grads[n]) for n in whole.param_grads)
    assert max(rel for _, _, rel in compare(chunked, autograd_reference(model, x, grad_output))) <= 1e-10


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("log_domain", [False, True], ids=["plain", "log"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_a_sweep_starts_at_the_last_step_a_gradient_enters(kind, kwargs, log_domain, packed, monkeypatch):
    """A loss on position t0 only, of a 2-layer bidirectional model: the top layer's forward sweep runs
    t0 + 1 steps, its reverse sweep T − t0 (each sample's own T with packing); the steps after them
    are exactly 0, and every gradient (per step, parameters, input, initial state) equals autograd's."""
    T, B, t0 = 9, 3, 4
    model = make_model(kind, kwargs, num_layers=2, bidirectional=True)
    gen = torch.Generator().manual_seed(11)
    lengths = [9, 7, 6] if packed else [T] * B
    x = torch.randn(T, B, model.input_size, generator=gen, dtype=torch.float64)
    g = torch.zeros(T, B, 2 * model.hidden_size, dtype=torch.float64)
    g[t0] = torch.randn(B, 2 * model.hidden_size, generator=gen, dtype=torch.float64)
    if packed:
        x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
        g = torch.nn.utils.rnn.pack_padded_sequence(g, torch.tensor(lengths), enforce_sorted=False)
    swept = []
    arch = type(model.architecture)
    sweep = arch.backward_sweep
    monkeypatch.setattr(arch, "backward_sweep", lambda self, tape, scale, *a, **k: (
        swept.append(scale.explicit.shape[0]), sweep(self, tape, scale, *a, **k))[1])
    res = bptt(model, x, g, log_domain=log_domain)
    assert swept[:2] == [t0 + 1, max(lengths) - t0]  # the top layer, forward then reverse
    assert swept[2:] == [T, T]  # the layer below has an explicit gradient at every step
    for d, zero in ((0, slice(t0 + 1, None)), (1, slice(0, t0))):
        assert (res.grad("h", 1, d)[zero] == 0).all() and (res.grad_norms("h", 1, d)[zero] == 0).all()
        if log_domain:
            assert np.isneginf(res.log10_grad_norms("h", 1, d)[zero]).all()
    assert_agree(res, autograd_reference(model, x, g))


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("log_domain", [False, True], ids=["plain", "log"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("steps", [1, 3, None], ids=["chunks-of-1", "chunks-of-3", "whole"])
def test_parameter_gradients_are_summed_chunk_by_chunk(kind, kwargs, log_domain, packed, steps, monkeypatch):
    """Compiled sweeps hand their projection gradients to the parameter sums in chunks of about
    CHUNK_BYTES (base.Projections; here without its least number of steps): in chunks of one step, of
    3 (not dividing T) or all at once, with each sample's final-state gradient merged by eager steps
    (packed), every gradient equals autograd's. The recurrent weights are scaled up so that the
    gradient grows backwards: in the log domain each chunk's largest scale is above the sums' so far,
    which are rescaled (eq. LOG-params)."""
    from gradlab.engine import params
    from gradlab.models.architectures import base

    T, B = 9, 3
    model = make_model(kind, kwargs, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("weight_hh"):
                p.mul_(4.0)
    gen = torch.Generator().manual_seed(12)
    lengths = [9, 7, 6] if packed else [T] * B
    x = torch.randn(T, B, model.input_size, generator=gen, dtype=torch.float64)
    g = torch.randn(T, B, 2 * model.hidden_size, generator=gen, dtype=torch.float64)
    end = random_like_state(model, B, gen)
    if packed:
        x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
        g = torch.nn.utils.rnn.pack_padded_sequence(g, torch.tensor(lengths), enforce_sorted=False)
    per_step = B * model.architecture.gate_count * model.hidden_size * (2 if kind == "gru" else 1) * 8
    monkeypatch.setattr(base, "CHUNK_BYTES", per_step * (steps or 10**6))
    monkeypatch.setattr(base, "CHUNK_STEPS", 1)
    chunks = []
    take = params.ParameterSums.take
    monkeypatch.setattr(params.ParameterSums, "take", lambda self, lo, hi, *a: (chunks.append(hi - lo + 1),
                                                                               take(self, lo, hi, *a))[1])
    res = bptt(model, x, g, grad_state=end, log_domain=log_domain)
    assert len(chunks) == 4 * -(-T // (steps or T)) and max(chunks) == (steps or T)  # 2 layers × 2 directions
    assert_agree(res, autograd_reference(model, x, g, grad_state=end))
