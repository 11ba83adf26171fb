"""gradlab's models compute exactly torch's functions and convert both ways."""

import pytest
import torch
from torch import nn

import gradlab
from helpers import CUDA, MODEL_CONFIGS, MODEL_IDS, make_input, make_model

TORCH_CLASSES = {"srn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def torch_module(kind, nonlinearity="tanh", **kw):
    if kind == "srn":
        kw["nonlinearity"] = nonlinearity
    return TORCH_CLASSES[kind](**kw)


def assert_same_result(a, b, atol):
    (out_a, st_a), (out_b, st_b) = a, b
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=0)
    st_a = st_a if isinstance(st_a, tuple) else (st_a,)
    st_b = st_b if isinstance(st_b, tuple) else (st_b,)
    assert len(st_a) == len(st_b)
    for x, y in zip(st_a, st_b):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


@pytest.mark.parametrize("kind,nonlinearity", [("srn", "tanh"), ("srn", "relu"), ("lstm", None), ("gru", None)])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_from_torch_computes_the_same_function(kind, nonlinearity, num_layers, bias, batch_first, bidirectional):
    torch.manual_seed(0)
    module = torch_module(kind, nonlinearity or "tanh", input_size=3, hidden_size=5, num_layers=num_layers,
                          bias=bias, batch_first=batch_first, bidirectional=bidirectional, dtype=torch.float64)
    model = gradlab.from_torch(module)
    assert type(model).__name__ == {"srn": "SRN", "lstm": "LSTM", "gru": "GRU"}[kind]
    assert model.bidirectional == bidirectional
    x = torch.randn((2, 7, 3) if batch_first else (7, 2, 3), dtype=torch.float64)
    assert_same_result(model(x), module(x), atol=1e-12)
    # with a given initial state
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), 2, 5, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    assert_same_result(model(x, state), module(x, state), atol=1e-12)


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
def test_unbatched_input_matches_batched(kind, kwargs):
    model = make_model(kind, kwargs, num_layers=2)
    x = make_input(model, T=5, B=1)
    out_b, st_b = model(x)
    out_u, st_u = model(x[:, 0])
    torch.testing.assert_close(out_u, out_b[:, 0], atol=0, rtol=0)
    st_b = st_b if isinstance(st_b, tuple) else (st_b,)
    st_u = st_u if isinstance(st_u, tuple) else (st_u,)
    for u, b in zip(st_u, st_b):
        assert u.shape == (2, 4)
        torch.testing.assert_close(u, b[:, 0], atol=0, rtol=0)


@pytest.mark.parametrize("kind,kwargs", [c for c in MODEL_CONFIGS if c[1].get("nonlinearity") != "linear"],
                         ids=[i for i in MODEL_IDS if i != "srn-linear"])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_round_trip_through_torch_is_exact(kind, kwargs, batch_first, bidirectional):
    model = make_model(kind, kwargs, num_layers=2, batch_first=batch_first, dtype=torch.float32,
                       bidirectional=bidirectional)
    module = gradlab.to_torch(model)
    assert isinstance(module, TORCH_CLASSES[kind])
    assert module.batch_first == batch_first and module.num_layers == 2 and module.bidirectional == bidirectional
    back = gradlab.from_torch(module)
    assert type(back) is type(model)
    assert list(back.state_dict()) == list(model.state_dict()) == list(module.state_dict())
    for name, p in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], p)
    x = make_input(model).float()
    assert_same_result(back(x), model(x), atol=0)
    assert_same_result(module(x), model(x), atol=1e-5)


def test_parameter_names_shapes_and_gate_counts_are_torchs():
    for kind, gates in (("srn", 1), ("lstm", 4), ("gru", 3)):
        ours = make_model(kind, {}, input_size=3, hidden_size=4, num_layers=2)
        theirs = torch_module(kind, input_size=3, hidden_size=4, num_layers=2)
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
               {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert ours.weight_hh_l1.shape == (gates * 4, 4)
        no_bias = make_model(kind, {}, bias=False)
        assert [n for n, _ in no_bias.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


def test_default_initialisation_is_uniform_in_one_over_sqrt_hidden():
    model = gradlab.LSTM(8, 16)
    for p in model.parameters():
        assert p.abs().max() <= 0.25 and p.std() > 0.1


def test_dtype_and_device_moves_work_like_any_module():
    model = gradlab.GRU(3, 4).double()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    out, h = model.to("cpu")(torch.randn(5, 2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64 and h.shape == (1, 2, 4)


def test_converting_preserves_dtype_and_training_mode():
    module = nn.LSTM(3, 4).double().eval()
    model = gradlab.from_torch(module)
    assert not model.training and next(model.parameters()).dtype == torch.float64
    assert not gradlab.to_torch(model).training


@pytest.mark.parametrize("bad,match", [
    (nn.Linear(3, 4), "takes torch.nn.RNN"),
])
def test_from_torch_rejects_what_it_cannot_express(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gradlab.from_torch(bad)


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_dropout_between_layers_draws_torchs_masks_from_the_same_seed(cls, bidirectional, packed):
    module = cls(3, 4, num_layers=3, dropout=0.4, bidirectional=bidirectional, dtype=torch.float64)
    model = gradlab.from_torch(module)
    assert model.dropout == 0.4 and model.training
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    if packed:
        x = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([6, 2, 4, 6, 1]), enforce_sorted=False)
    torch.manual_seed(7)
    want = module(x)
    after_torch = torch.get_rng_state()
    torch.manual_seed(7)
    got = model(x)
    assert torch.equal(torch.get_rng_state(), after_torch)  # the same random numbers drawn
    flat = lambda out: [t.data if hasattr(t, "batch_sizes") else t for t in  # noqa: E731
                        (out[0], *((out[1],) if isinstance(out[1], torch.Tensor) else out[1]))]
    for a, b in zip(flat(got), flat(want)):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)
    torch.manual_seed(7)
    masked = flat(model(x))[0]
    torch.manual_seed(8)
    assert not torch.allclose(masked, flat(model(x))[0])  # the masks do act
    model.eval()
    module.eval()
    torch.testing.assert_close(flat(model(x))[0], flat(module(x))[0], atol=1e-13, rtol=0)


def test_dropout_with_one_layer_warns_as_torch_does():
    with pytest.warns(UserWarning, match="between layers"):
        gradlab.GRU(3, 4, dropout=0.5)


def test_linear_srn_has_no_torch_equivalent():
    with pytest.raises(ValueError, match="linear"):
        gradlab.to_torch(gradlab.SRN(3, 4, nonlinearity="linear"))


@pytest.mark.parametrize("kwargs,match", [
    ({"hidden_size": 0}, "hidden_size"),
    ({"num_layers": 1.5}, "num_layers"),
    ({"nonlinearity": "sigmoid"}, "nonlinearity"),
])
def test_bad_constructor_arguments_say_what_is_wrong(kwargs, match):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        gradlab.SRN(**args)


def test_bad_state_shape_says_what_is_expected():
    model = gradlab.LSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"h_0 must have shape \[2, 2, 4\]"):
        model(x, (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match=r"\(h_0, c_0\)"):
        model(x, torch.zeros(2, 2, 4))


def test_repr_shows_the_configuration_and_the_hook_points():
    text = repr(gradlab.LSTM(3, 4, num_layers=2, batch_first=True))
    assert "3, 4, num_layers=2, batch_first=True" in text
    assert "(hook_c)" in text and "2 x HookPoint()" in text


@CUDA
@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
def test_from_torch_on_cuda(kind):
    module = torch_module(kind, input_size=3, hidden_size=5, num_layers=2).cuda()
    model = gradlab.from_torch(module)
    assert next(model.parameters()).is_cuda
    x = torch.randn(7, 2, 3, device="cuda")
    assert_same_result(model(x), module(x), atol=1e-5)


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
def test_one_step_of_the_whole_stack_taken_t_times_equals_forward(kind, kwargs):
    """RecurrentModel.step (time-major order, what theory differentiates) against forward (layer by layer)."""
    model = make_model(kind, kwargs, num_layers=3)
    x = make_input(model, T=6, B=2)
    gen = torch.Generator().manual_seed(4)
    init = tuple(0.5 * torch.randn(3, 2, 4, generator=gen, dtype=torch.float64) for _ in model.state_names)
    output, final = model(x, init[0] if len(init) == 1 else init)
    state = init
    for t in range(6):
        state = model.step(x[t], state)
        torch.testing.assert_close(state[0][-1], output[t], atol=1e-14, rtol=0)
    finals = (final,) if isinstance(final, torch.Tensor) else final
    for got, want in zip(state, finals):
        torch.testing.assert_close(got, want, atol=1e-14, rtol=0)


def test_every_model_class_has_its_architecture_and_torch_counterparts():
    from gradlab.models.architectures import ARCHITECTURES
    from gradlab.models.recurrent import MODEL_CLASSES

    assert set(MODEL_CLASSES) == set(ARCHITECTURES)
    for name, cls in MODEL_CLASSES.items():
        model = cls(2, 3)
        assert model.kind == name and model.architecture.name == name
        assert model.hook_point("h", 0) is model.hook_h[0]
        assert (model.hook_c is not None) == ("c" in model.state_names)
        assert cls.torch_module.__module__.startswith("torch.nn") and cls.torch_cell.__module__.startswith("torch.nn")


def test_a_bidirectional_model_has_hook_points_per_direction_at_torchs_index():
    model = gradlab.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert len(model.hook_h) == len(model.hook_c) == len(model.hook_out) == 4
    assert model.hook_point("c", 1, 1) is model.hook_c[3]  # layer k, direction d: index k·D + d, as h_n's
    seen = []
    with gradlab.attached([(model.hook_point("h", 0, 1), lambda h, t: seen.append(t))]):
        model(torch.randn(5, 2, 3))
    assert seen == [4, 3, 2, 1, 0]  # the reverse direction visits the input positions from the last


def test_what_has_no_meaning_for_a_bidirectional_model_is_refused_with_the_reason():
    model = gradlab.GRU(3, 4, bidirectional=True, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="reverse direction reads the future"):
        model.step(x[0], (torch.zeros(2, 2, 4, dtype=torch.float64),))
    with pytest.raises(ValueError, match="no one-step state map"):
        gradlab.lyapunov_exponents(model, x)
    with pytest.raises(ValueError, match="needs the whole sequence"):
        gradlab.checkpointed_norms(model, lambda a, b: x[a:b], lambda a, b, o: torch.zeros_like(o), 6, 2)
    with pytest.raises(ValueError, match="one direction"):
        gradlab.to_nndl(gradlab.SRN(3, 4, bidirectional=True))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_a_projected_lstm_computes_torchs_function_and_round_trips(bidirectional, packed):
    module = nn.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=bidirectional, dtype=torch.float64)
    model = gradlab.from_torch(module)
    assert model.proj_size == 2 and model.output_size == 2 and model.state_sizes == {"h": 2, "c": 5}
    assert model.weight_hr_l1.shape == (2, 5) and "proj_size=2" in repr(model)
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    if packed:
        x = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([6, 3, 5, 1]), enforce_sorted=False)
    (out, (h, c)), (want, (want_h, want_c)) = model(x), module(x)
    data = lambda o: o.data if hasattr(o, "batch_sizes") else o  # noqa: E731
    torch.testing.assert_close(data(out), data(want), atol=1e-14, rtol=0)
    torch.testing.assert_close(h, want_h, atol=1e-14, rtol=0)
    torch.testing.assert_close(c, want_c, atol=1e-14, rtol=0)
    back = gradlab.to_torch(model)
    assert back.proj_size == 2 and all(torch.equal(a, b) for a, b in zip(back.parameters(), module.parameters()))


def test_a_projection_is_the_lstms_and_smaller_than_its_hidden_size():
    with pytest.raises(ValueError, match="proj_size applies to the LSTM"):
        gradlab.RecurrentModel(gradlab.GRU(3, 4).architecture, 3, 4, proj_size=2)
    with pytest.raises(ValueError, match=r"proj_size must be an integer in \[0, hidden_size\)"):
        gradlab.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="LSTMCell has no projection"):
        gradlab.to_torch_cell(gradlab.LSTM(3, 4, proj_size=2))
