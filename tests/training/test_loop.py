"""Training: the loss falls, a short run beats chance, clipping bounds what it should, gradient
norms are logged before clipping, the best dev weights are kept, checkpoints round trip."""

import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

import gradlab
from hypothesis import given, settings, strategies as st

from gradlab.tasks.weights import load_checkpoint, save_checkpoint
from gradlab.training.clipping import clip_gradients, gradient_norms
from gradlab.models.regimes import initialise
from gradlab.models.recurrent import MODEL_CLASSES
from gradlab.training.scoring import score
from gradlab.training.loop import TrainConfig, train

TINY = TrainConfig(model="lstm", task="temporal-order", length=10, hidden=8, steps=20, batch=16, lr=1e-2,
                   eval_every=10, sizes=(64, 32, 32))


def test_a_few_steps_on_one_batch_reduce_the_loss():
    # train and batch sizes equal: every step sees the same 16 examples
    for model in ("srn", "lstm", "gru"):
        result = train(replace(TINY, model=model, sizes=(16, 16, 16), steps=15), progress=False)
        loss = result.history["loss"]
        assert loss[-1] < 0.7 * loss[0], (model, loss[0], loss[-1])


def test_a_short_run_beats_chance():
    cfg = replace(TINY, hidden=16, steps=150, batch=32, sizes=(2000, 200, 200), eval_every=50)
    result = train(cfg, progress=False)
    assert result.chance == 0.25
    assert result.test.value > 0.6


def test_the_best_dev_weights_are_returned_and_scored_on_test():
    cfg = replace(TINY, steps=40)
    result = train(cfg, progress=False)
    dev_scores = [e["dev_accuracy"] for e in result.evals]
    assert [e["step"] for e in result.evals] == [10, 20, 30, 40]
    assert result.best_dev.value == max(dev_scores)
    assert result.best_step == result.evals[dev_scores.index(max(dev_scores))]["step"]
    from gradlab.training.loop import load_data

    data = load_data(cfg)
    assert score(result.problem, data["dev"]).value == result.best_dev.value
    assert score(result.problem, data["test"]) == result.test


def _problem_with_grads(scale):
    torch.manual_seed(0)
    model = MODEL_CLASSES["lstm"](3, 4)
    for i, p in enumerate(model.parameters()):
        p.grad = torch.randn_like(p) * scale * (i + 1)
    return model


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-3, 1e3), max_norm=st.floats(0.01, 10.0))
def test_clipping_modes_bound_what_they_should(scale, max_norm):
    model = _problem_with_grads(scale)
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    norms = gradient_norms(model.named_parameters())

    clip_gradients(model.parameters(), "none", max_norm)
    assert all(torch.equal(p.grad, before[n]) for n, p in model.named_parameters())

    clip_gradients(model.parameters(), "per-param", max_norm)
    for n, p in model.named_parameters():
        assert float(p.grad.norm()) <= max_norm * (1 + 1e-5)
        if norms[n] <= max_norm * (1 - 1e-5):  # small ones untouched
            assert torch.equal(p.grad, before[n])
        else:  # large ones rescaled, same direction
            assert torch.allclose(p.grad * norms[n] / float(p.grad.norm()), before[n], rtol=1e-4, atol=1e-6)

    model = _problem_with_grads(scale)
    total = math.sqrt(sum(v ** 2 for v in norms.values()))
    clip_gradients(model.parameters(), "global", max_norm)
    after = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    assert after <= max_norm * (1 + 1e-5) or total <= max_norm
    factors = {n: float(p.grad.norm()) / norms[n] for n, p in model.named_parameters()}
    assert max(factors.values()) - min(factors.values()) < 1e-4  # one factor for all


def test_gradient_norms_are_logged_before_clipping_and_sgd_steps_are_clipped():
    cfg = replace(TINY, model="srn", steps=1, optimizer="sgd", lr=1.0, clip="per-param", clip_norm=1e-3)
    from gradlab.training.loop import make_problem

    start = {n: p.detach().clone() for n, p in make_problem(cfg).named_parameters()}
    result = train(cfg, progress=False)
    logged = {k.split("/", 1)[1]: v[0] for k, v in result.history.items() if k.startswith("grad_norm/")}
    assert max(logged.values()) > 1e-2  # the logged norms are the unclipped ones
    for name, p in result.problem.named_parameters():
        moved = float((p.detach() - start[name]).norm())  # SGD, lr 1: the step is the clipped gradient
        assert moved <= 1e-3 * (1 + 1e-4), name


@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
def test_nndl_init_is_xavier_uniform_with_one_bias(kind):
    torch.manual_seed(0)
    model = MODEL_CLASSES[kind](32, 32)
    initialise(model, "nndl", seed=0)
    w_ih, w_hh, b_ih, b_hh = model.layer_parameters(0)
    for w in (w_ih, w_hh):
        bound = math.sqrt(6 / 64)
        assert float(w.detach().abs().max()) <= bound and float(w.detach().abs().max()) > 0.9 * bound
    assert float(b_ih.detach().abs().max()) <= math.sqrt(6 / 33)
    assert float(b_hh.detach().abs().max()) == 0.0
    assert b_hh.requires_grad == (kind == "gru")


@pytest.mark.parametrize("model", ["srn", "lstm", "gru"])
def test_training_the_fused_module_is_training_gradlabs_model(model):
    """gradlab train runs torch's fused module; gradlab's unrolled model (what it ran before) trains
    the same way, step for step, in float64."""
    cfg = replace(TINY, model=model, steps=12, dtype="float64", trace_every=5, trace_batch=4)
    fused, unrolled = train(cfg, progress=False), train(cfg, progress=False, fused=False)
    assert fused.engine == {"srn": "torch.nn.RNN", "lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU"}[model] + \
        " (fused kernels)" and unrolled.engine.startswith("gradlab's unrolled")
    np.testing.assert_allclose(fused.history["loss"], unrolled.history["loss"], rtol=1e-9)
    for a, b in zip(fused.traces, unrolled.traces):
        for name in a["profile"]:
            np.testing.assert_allclose(a["profile"][name], b["profile"][name], rtol=1e-9)
    assert isinstance(fused.problem.model, gradlab.RecurrentModel)  # the result holds gradlab's model
    for (name, p), q in zip(fused.problem.named_parameters(), unrolled.problem.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12, msg=name)


def test_book_bias_stays_zero_through_training():
    result = train(replace(TINY, model="srn", init="nndl", steps=5), progress=False)
    assert float(result.problem.model.bias_hh_l0.abs().max()) == 0.0
    assert "grad_norm/model.bias_hh_l0" not in result.history


def test_traces_are_recorded_at_step_zero_every_n_steps_and_at_the_end():
    result = train(replace(TINY, steps=10, trace_every=4, trace_batch=5), progress=False)
    assert [t["step"] for t in result.traces] == [0, 4, 8, 10]
    for t in result.traces:
        assert set(t["profile"]) == {"h", "c"} and len(t["profile"]["h"]) == TINY.length
        assert t["profile"]["h"][0] > t["profile"]["h"][-1]


def test_checkpoint_round_trip(tmp_path):
    result = train(replace(TINY, model="gru", steps=3), progress=False)
    path = save_checkpoint(tmp_path / "c.pt", result.problem, asdict(result.config), {"step": result.best_step})
    problem, config, info = load_checkpoint(path)
    assert config == asdict(result.config) and info == {"step": result.best_step}
    for (n, a), (m, b) in zip(result.problem.state_dict().items(), problem.state_dict().items()):
        assert n == m and torch.equal(a, b)
    x = torch.as_tensor(np.random.default_rng(0).integers(0, 6, size=(4, 10)))
    assert torch.equal(problem(x), result.problem(x))
    with pytest.raises(FileExistsError):
        save_checkpoint(path, problem, config, info)


def test_loading_something_else_says_so(tmp_path):
    (tmp_path / "x.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a gradlab checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a gradlab checkpoint"):
        load_checkpoint(tmp_path / "y.pt")
