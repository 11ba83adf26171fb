"""record() gives, at every step, what torch.autograd.grad gives for that step's state tensor."""

import numpy as np
import pytest
import torch
from torch import nn

import gradlab
from helpers import CUDA, MODEL_CONFIGS, MODEL_IDS, make_input, make_model
from gradlab.engine.numerics import stable_norm

LOSSES = {
    # the loss reads h_T only (the last step of the top layer)
    "last": lambda out, bf: (out[:, -1] if bf else out[-1]).sin().sum(),
    # the loss reads every step
    "all": lambda out, bf: (out * torch.linspace(0.5, 1.5, out.shape[-1], dtype=out.dtype,
                                                 device=out.device)).pow(2).sum(),
}


def autograd_twin(model, x, loss_fn):
    """Every h_t, c_t and layer output captured in the forward pass, and autograd's gradients."""
    captured = {}

    def capture(key):
        def fn(tensor, t):
            captured[(key, t)] = tensor
        return fn

    pairs = []
    for name in model.state_names + ("out",):
        for k in range(model.num_layers):
            pairs.append((getattr(model, f"hook_{name}")[k], capture((name, k))))
    h0 = torch.zeros(model.num_layers, x.shape[0 if model.batch_first else 1], model.hidden_size,
                     dtype=x.dtype, device=x.device, requires_grad=True)
    state = (h0, torch.zeros_like(h0, requires_grad=True)) if model.state_names == ("h", "c") else h0
    with gradlab.attached(pairs):
        output, _ = model(x, state)
    loss = loss_fn(output)
    keys = list(captured)
    initial = list(state) if isinstance(state, tuple) else [state]
    grads = torch.autograd.grad(loss, [captured[k] for k in keys] + initial, allow_unused=True)
    by_key = {k: (g if g is not None else torch.zeros_like(captured[k])) for k, g in zip(keys, grads)}
    return by_key, grads[len(keys):], output


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("loss", ["last", "all"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_record_equals_autograd_on_every_state(kind, kwargs, num_layers, loss, batch_first):
    model = make_model(kind, kwargs, num_layers=num_layers, batch_first=batch_first)
    x = make_input(model, T=6, B=3)
    loss_fn = lambda out: LOSSES[loss](out, batch_first)  # noqa: E731
    trace = gradlab.record(model, x, loss_fn, full=True)
    expected, initial, _ = autograd_twin(model, x, loss_fn)
    T = 6
    for name in model.state_names:
        for k in range(num_layers):
            want = torch.stack([expected[((name, k), t)] for t in range(T)])
            torch.testing.assert_close(trace.grad(name, k), want, atol=1e-13, rtol=1e-12)
            np.testing.assert_allclose(trace.grad_norms(name, k), want.norm(dim=-1).numpy(), rtol=1e-12, atol=1e-15)
    for k in range(num_layers):
        want = expected[(("out", k), None)]
        torch.testing.assert_close(trace.explicit_grad(k), want, atol=1e-13, rtol=1e-12)
    for name, g in zip(model.state_names, initial):
        torch.testing.assert_close(trace.initial_grads[name], g, atol=1e-13, rtol=1e-12)
    assert trace.loss == pytest.approx(loss_fn(model(x)[0]).item(), rel=1e-12)


@pytest.mark.parametrize("batch_first", [False, True])
def test_explicit_part_of_the_top_layer_is_the_gradient_of_output(batch_first):
    model = make_model("lstm", {}, num_layers=2, batch_first=batch_first)
    x = make_input(model)
    output = model(x)[0].detach().requires_grad_(True)
    (g_out,) = torch.autograd.grad(LOSSES["all"](output, batch_first), output)
    trace = gradlab.record(model, x, lambda o: LOSSES["all"](o, batch_first), full=True)
    want = g_out.transpose(0, 1) if batch_first else g_out
    torch.testing.assert_close(trace.explicit_grad(-1), want, atol=1e-14, rtol=1e-12)


def test_explicit_part_is_zero_except_where_the_loss_reads():
    model = make_model("gru", {})
    trace = gradlab.record(model, make_input(model), lambda o: LOSSES["last"](o, False))
    explicit = trace.explicit_grad_norms()
    assert np.all(explicit[:-1] == 0) and np.all(explicit[-1] > 0)
    assert np.all(trace.grad_norms("h")[:-1] > 0)  # the total reaches back


def test_lstm_cell_gradient_includes_the_same_step_path():
    """Loss on h_T only: ∂L/∂c_T ≠ 0, because c_T → h_T = o ⊙ tanh(c_T) inside the step."""
    model = make_model("lstm", {})
    trace = gradlab.record(model, make_input(model), lambda o: o[-1].sum(), full=True)
    assert np.all(trace.grad_norms("c")[-1] > 0)
    # and it is exactly o_T ⊙ (1 − tanh²(c_T)) ⊙ ∂L/∂h_T
    captured = {}
    with gradlab.attached([(model.hook_c[0], lambda c, t: captured.__setitem__(t, c.detach()))]):
        out = model(make_input(model))[0]
    h_T = out[-1].detach()
    o_T = h_T / torch.tanh(captured[5])
    want = o_T * (1 - torch.tanh(captured[5]) ** 2) * trace.grad("h")[-1]
    torch.testing.assert_close(trace.grad("c")[-1], want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
def test_norms_only_mode_gives_the_same_norms(kind, kwargs):
    model = make_model(kind, kwargs, num_layers=2)
    x = make_input(model)
    loss_fn = lambda o: LOSSES["all"](o, False)  # noqa: E731
    full = gradlab.record(model, x, loss_fn, full=True)
    lean = gradlab.record(model, x, loss_fn, full=False)
    assert not lean.has_tensors
    for name in model.state_names:
        for k in range(2):
            np.testing.assert_array_equal(lean.grad_norms(name, k), full.grad_norms(name, k))
    with pytest.raises(ValueError, match="full=True"):
        lean.grad("h")


def test_record_accepts_users_torch_modules():
    torch.manual_seed(0)
    module = nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    from_module = gradlab.record(module, x, lambda o: o[:, -1].sum())
    from_model = gradlab.record(gradlab.from_torch(module), x, lambda o: o[:, -1].sum())
    np.testing.assert_array_equal(from_module.grad_norms("c", 0), from_model.grad_norms("c", 0))
    assert from_module.grad_norms("h").shape == (5, 2)


def test_record_leaves_parameter_grads_and_hooks_alone():
    model = make_model("lstm", {}, num_layers=2)
    gradlab.record(model, make_input(model), lambda o: o.sum())
    assert all(p.grad is None for p in model.parameters())
    assert not any(p.has_hooks for p in gradlab.hook_points(model).values())


def test_no_hook_outlives_a_failing_loss():
    model = make_model("srn", {})

    def broken(output):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        gradlab.record(model, make_input(model), broken)
    assert not any(p.has_hooks for p in gradlab.hook_points(model).values())
    with pytest.raises(ValueError, match="scalar"):
        gradlab.record(model, make_input(model), lambda o: o.sum(0))
    assert not any(p.has_hooks for p in gradlab.hook_points(model).values())


def test_unbatched_input_records_one_sample():
    model = make_model("gru", {})
    x = make_input(model, B=1)
    one = gradlab.record(model, x[:, 0], lambda o: o[-1].sum())
    batched = gradlab.record(model, x, lambda o: o[-1].sum())
    np.testing.assert_allclose(one.grad_norms("h"), batched.grad_norms("h"), rtol=1e-14)


def test_record_rejects_other_modules():
    with pytest.raises(TypeError, match="SRN/LSTM/GRU"):
        gradlab.record(nn.Linear(3, 4), torch.zeros(2, 3), lambda o: o.sum())


def test_stable_norm_is_exact_where_the_naive_norm_underflows_or_overflows():
    tiny = torch.full((2, 4), 1e-30, dtype=torch.float32)
    assert torch.linalg.vector_norm(tiny, dim=-1)[0] == 0  # the naive norm underflows
    assert stable_norm(tiny)[0].item() == pytest.approx(2e-30, rel=1e-6)
    tiny64 = torch.full((4,), 1e-200, dtype=torch.float64)
    assert torch.linalg.vector_norm(tiny64) == 0
    assert stable_norm(tiny64).item() == pytest.approx(2e-200, rel=1e-14)
    huge = torch.full((4,), 1e300, dtype=torch.float64)
    assert stable_norm(huge).item() == pytest.approx(2e300)
    assert stable_norm(torch.zeros(3)).item() == 0.0
    bad = torch.tensor([[1.0, float("inf")], [float("nan"), 1.0]])
    assert stable_norm(bad).tolist() == [float("inf"), float("inf")]


def test_float32_gradients_that_underflow_are_zero_not_nan():
    """A linear SRN with W_hh = 0.1·I: ∂L/∂h_t shrinks 10× per step and reaches 0.0 in float32."""
    model = gradlab.SRN(2, 2, nonlinearity="linear", bias=False)
    with torch.no_grad():
        model.weight_hh_l0.copy_(0.1 * torch.eye(2))
    norms = gradlab.record(model, torch.ones(80, 1, 2), lambda o: o[-1].sum()).grad_norms("h")[:, 0]
    assert not np.isnan(norms).any()
    assert norms[0] == 0.0 and norms[-1] > 0
    np.testing.assert_allclose(norms[-30:-1] / norms[-29:], 0.1, rtol=1e-4)


@CUDA
@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_record_equals_autograd_on_cuda(kind, kwargs, num_layers):
    model = make_model(kind, kwargs, num_layers=num_layers, device="cuda")
    x = make_input(model)
    loss_fn = lambda o: LOSSES["all"](o, False)  # noqa: E731
    trace = gradlab.record(model, x, loss_fn, full=True)
    expected, _, _ = autograd_twin(model, x, loss_fn)
    for name in model.state_names:
        for k in range(num_layers):
            want = torch.stack([expected[((name, k), t)] for t in range(6)])
            torch.testing.assert_close(trace.grad(name, k), want, atol=1e-13, rtol=1e-12)
    assert trace.meta["device"].startswith("cuda")


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS[:1] + MODEL_CONFIGS[3:], ids=MODEL_IDS[:1] + MODEL_IDS[3:])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_a_loss_on_the_final_state_is_recorded_exactly(kind, kwargs, bidirectional):
    """loss_fn(output, final): every ∂L/∂h_t, ∂L/∂c_t equals autograd's, and ∂L/∂h_n is part of the
    explicit gradient at each direction's last step (position T−1 forward, 0 reverse)."""
    from gradlab.engine.reference import autograd_reference

    model = make_model(kind, kwargs, num_layers=2, bidirectional=bidirectional)
    x = make_input(model, T=6, B=3)
    D = model.num_directions

    def loss_fn(output, final):
        parts = (final,) if isinstance(final, torch.Tensor) else final
        return sum(p.sin().sum() for p in parts)  # the final state only: output[t] is not read

    trace = gradlab.record(model, x, loss_fn, full=True)
    _, final = model(x)
    parts = tuple(p.detach().requires_grad_(True) for p in ((final,) if isinstance(final, torch.Tensor) else final))
    grad_state = torch.autograd.grad(loss_fn(None, parts[0] if len(parts) == 1 else parts), parts)
    grad_state = grad_state[0] if len(parts) == 1 else grad_state
    want = autograd_reference(model, x, torch.zeros(6, 3, 4 * D, dtype=torch.float64), grad_state=grad_state)
    for name in model.state_names:
        for k in range(2):
            for d in range(D):
                torch.testing.assert_close(trace.grad(name, k, d), want.grad(name, k, d), atol=1e-13, rtol=1e-12)
    g_h_n = (grad_state if isinstance(grad_state, torch.Tensor) else grad_state[0]).view(2, D, 3, 4)
    for d, last in zip(range(D), (5, 0)):
        top = trace.explicit_grad(1, d)
        torch.testing.assert_close(top[last], g_h_n[1, d])
        assert (np.delete(trace.explicit_grad_norms(1, d), last, axis=0) == 0).all()
    # the log-domain pass sees the same loss
    np.testing.assert_allclose(trace.log10_grad_norms("h", 0), np.log10(trace.grad_norms("h", 0)), atol=1e-12)
