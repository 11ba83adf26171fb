"""The compiled sweep steps (gradlab/models/architectures/sweep_steps.cpp), quiet and entered, against
the eager steps they replace: the same sweeps with GRADLAB_COMPILED=0 are the reference, float64 to
1e-12 and float32 to its own accuracy of each step's largest entry; and the eager fallback when they
cannot load."""

import itertools
import math
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import gradlab
from gradlab.engine import logscale
from gradlab.models.architectures import compiled
from helpers import MODEL_CONFIGS, MODEL_IDS, assert_close_per_step, counted_kernels, make_model, sweep_inputs

CONFIGS = MODEL_CONFIGS + [("lstm", {"proj_size": 3})]  # the projected LSTM runs eager steps both times
IDS = MODEL_IDS + ["lstm-proj"]
HAS_TOOLCHAIN = shutil.which("c++") is not None


def both_ways(run, monkeypatch):
    """run() with the compiled sweep steps, then with the eager ones."""
    monkeypatch.setenv("GRADLAB_COMPILED", "1")
    fast = run()
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    eager = run()
    monkeypatch.setenv("GRADLAB_COMPILED", "1")
    return fast, eager


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler: the sweeps run their eager steps")
def test_the_compiled_steps_load_where_a_compiler_is():
    assert compiled._load() is None
    assert compiled.kernels(torch.empty(1)) is not None
    assert compiled.kernels(torch.empty(1, dtype=torch.float64)) is not None
    assert compiled.library_path().exists()


def worst_row_error(a, b, model):
    """The largest error of any step's row of a's state gradients against b's, relative to b's row maximum."""
    worst = 0.0
    for name in model.state_names:
        ga, gb = a.grads[name].double(), b.grads[name].double()
        worst = max(worst, float(((ga - gb).abs().amax(-1) / gb.abs().amax(-1).clamp_min(1e-300)).max()))
    return worst


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("loss", ["last", "scattered", "all"])
@pytest.mark.parametrize("log_domain", [True, False], ids=["log", "plain"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_compiled_and_eager_steps_agree_in_float64(config, loss, log_domain, layers, bidirectional, monkeypatch):
    kind, kwargs = config
    model = make_model(kind, kwargs, input_size=3, hidden_size=5, num_layers=layers, bidirectional=bidirectional)
    x, g, end = sweep_inputs(model, 75, 4, loss, torch.float64)
    calls = counted_kernels(monkeypatch)
    entered = eager_entries(monkeypatch)
    fast = gradlab.bptt(model, x, g, grad_state=end, log_domain=log_domain)
    projected = kwargs.get("proj_size", 0) > 0  # no compiled LSTM step with a projection: eager both times
    if not projected:
        assert sum(calls.values()) > 0 and entered == []  # every span ran compiled, entered ones too
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    eager = gradlab.bptt(model, x, g, grad_state=end, log_domain=log_domain)
    if loss == "all" or layers > 1:
        assert entered  # the reference did enter steps eagerly
    assert_close_per_step(fast, eager, model, 1e-12)


def eager_entries(monkeypatch) -> list:
    """Count the scales' eager ``enter`` calls (the steps entered in Python): returns the list of steps."""
    steps = []
    for scale in (logscale.LogScale, logscale.PlainScale):
        def counting(self, t, *args, _enter=scale.enter, **kwargs):
            steps.append(t)
            return _enter(self, t, *args, **kwargs)
        monkeypatch.setattr(scale, "enter", counting)
    return steps


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("log_domain", [True, False], ids=["log", "plain"])
def test_compiled_float32_steps_are_as_accurate_as_the_eager_ones(config, log_domain, monkeypatch):
    """In float32 the two paths round differently: torch's vectorised kernels may fuse a multiply-add
    that the compiled loop does not, and the compiled recurrent product (product.h) sums in its own order.
    Each path is held to the float64 sweep, on 32 problems (16 seeds, a loss on the last step and on a
    few scattered ones): every worst row error is at float32's level, and the compiled path's are no
    larger than the eager path's in the geometric mean (within 1.5×). One problem alone decides little:
    the ratio of the two paths' errors on single problems spread from 0.05 to 6.9 (240 problems, AMD
    EPYC with AVX-512), the geometric mean over 80 was 1.21 for the worst case here, the plain SRN."""
    kind, kwargs = config
    ratios = []
    for seed, loss in itertools.product(range(16), ["last", "scattered"]):
        model = make_model(kind, kwargs, input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
        x, g, end = sweep_inputs(model, 75, 4, loss, torch.float64, seed=seed)
        truth = gradlab.bptt(model, x, g, grad_state=end, log_domain=log_domain)
        single = model.float()
        cast = (lambda v: tuple(p.float() for p in v)) if isinstance(end, tuple) else (lambda v: v.float())
        fast, eager = both_ways(lambda: gradlab.bptt(single, x.float(), g.float(), grad_state=cast(end),
                                                     log_domain=log_domain), monkeypatch)
        eager_error, fast_error = worst_row_error(eager, truth, model), worst_row_error(fast, truth, model)
        assert 0 < eager_error < 1e-3 and fast_error < 1e-3  # 75 steps and two layers of float32 rounding
        ratios.append(fast_error / eager_error)
    geometric_mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    assert geometric_mean <= 1.5


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
@pytest.mark.parametrize("log_domain", [True, False], ids=["log", "plain"])
def test_packed_batches_agree(kind, log_domain, monkeypatch):
    """Each sample's final-state gradient enters at its own last step: the spans stop there."""
    model = make_model(kind, {}, input_size=3, hidden_size=6, num_layers=2, bidirectional=True).double()
    lengths = torch.tensor([61, 40, 17])
    gen = torch.Generator().manual_seed(5)
    x = pack_padded_sequence(torch.randn(61, 3, 3, generator=gen, dtype=torch.float64), lengths)
    loss = lambda out, final: (final[0] if isinstance(final, tuple) else final).pow(2).sum()  # noqa: E731
    calls = counted_kernels(monkeypatch)
    fast, eager = both_ways(lambda: gradlab.record(model, x, loss, full=True, log_domain=log_domain), monkeypatch)
    assert sum(calls.values()) > 0
    for name in model.state_names:
        a, b = fast.grads[name], eager.grads[name]
        assert ((a - b).abs().amax(-1) <= 1e-12 * b.abs().amax(-1)).all()
    if log_domain:
        for name in model.state_names:
            torch.testing.assert_close(torch.as_tensor(fast.log10_norms[name]), torch.as_tensor(eager.log10_norms[name]),
                                       rtol=0, atol=1e-12)


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
def test_a_decay_past_float_range_agrees_in_the_log_domain(monkeypatch):
    """Far back the compiled log-domain sweep gives the same exact log10 norms where plain float32 reads 0."""
    torch.manual_seed(0)
    model = torch.nn.LSTM(4, 16)
    x = torch.randn(600, 2, 4)
    fast, eager = both_ways(lambda: gradlab.record(model, x, lambda out: out[-1].sum()), monkeypatch)
    assert (fast.norms["h"][0, 0, 0] == 0).all() and fast.log10_norms["h"][0, 0, 0].max() < -38
    for name in ("h", "c"):
        torch.testing.assert_close(torch.as_tensor(fast.log10_norms[name]), torch.as_tensor(eager.log10_norms[name]),
                                   rtol=0, atol=1e-4)  # float32 carries: log10(1 + 2·eps) per step, over 600 steps
        # the plain values and their norms, measured in the compiled steps: underflowed to 0.0 at the same
        # steps, and as the eager to_plain forms them where they have not (600 steps of float32 rounding)
        assert np.array_equal(fast.norms[name] == 0, eager.norms[name] == 0)
        np.testing.assert_allclose(fast.norms[name], eager.norms[name], rtol=1e-3, atol=0)
        assert torch.equal(fast.grads[name] == 0, eager.grads[name] == 0)


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
@pytest.mark.parametrize("rho", [1e2, 1e-2], ids=["growing", "shrinking"])
def test_a_gradient_entering_every_step_past_float_range_agrees(rho, monkeypatch):
    """A linear SRN with W_hh = ρ·Q (Q orthogonal) scales the carry by exactly ρ a step and a float32
    gradient enters at every step: growing, the carry passes float32's range within 20 steps (plain
    float32 reads inf); shrinking, each step's own gradient takes over. The compiled entered spans
    (every step merged and rescaled) give the eager steps' log10 norms."""
    H, T = 6, 129
    Q, _ = torch.linalg.qr(torch.randn(H, H, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    model = gradlab.SRN(2, H, nonlinearity="linear", bias=False)
    with torch.no_grad():
        model.weight_hh_l0.copy_(rho * Q)
    x = torch.zeros(T, 3, 2)
    g = torch.randn(T, 3, H, generator=torch.Generator().manual_seed(1))
    entered = eager_entries(monkeypatch)
    fast, eager = both_ways(lambda: gradlab.bptt(model, x, g, log_domain=True), monkeypatch)
    assert len(entered) == T  # the eager reference entered every step; the compiled run none
    a, b = fast.log10_grad_norms("h", 0), eager.log10_grad_norms("h", 0)
    assert np.isfinite(a).all() and (a.max() > 200 if rho > 1 else a.max() < 2)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)  # float32 carries: log10(1 + 2·eps) a step over 129
    if rho > 1:
        # five steps back the entering gradients (~1) are under 10⁻¹⁰ of the carry (~100⁵): lost beside it
        np.testing.assert_allclose(a[:-6] - a[1:-5], np.log10(rho), atol=1e-4, rtol=0)


def test_turned_off_the_eager_steps_run_without_a_warning(monkeypatch):
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    assert compiled.kernels(torch.empty(1)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradlab.record(torch.nn.GRU(3, 4), torch.randn(8, 2, 3), lambda out: out[-1].sum())


def test_other_dtypes_run_the_eager_steps():
    assert compiled.kernels(torch.empty(1, dtype=torch.bfloat16)) is None
    assert compiled.kernels(torch.empty(1, dtype=torch.float16)) is None


def test_a_library_that_fails_to_load_falls_back_with_one_warning(monkeypatch):
    model = torch.nn.LSTM(3, 4)
    x = torch.randn(40, 2, 3)
    loss = lambda out: out[-1].sum()  # noqa: E731
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    eager = gradlab.record(model, x, loss, full=True)
    monkeypatch.setenv("GRADLAB_COMPILED", "1")
    monkeypatch.setattr(compiled, "_load", lambda: "CalledProcessError: no compiler here")
    compiled._warn_once.cache_clear()
    try:
        with pytest.warns(compiled.EagerFallbackWarning, match="no compiler here") as caught:
            fallback = gradlab.record(model, x, loss, full=True)
            gradlab.record(model, x, loss)
        assert len(caught) == 1  # once per process
    finally:
        compiled._warn_once.cache_clear()
    assert torch.equal(fallback.grads["h"], eager.grads["h"]) and torch.equal(fallback.grads["c"], eager.grads["c"])


def test_the_cache_key_follows_the_source(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADLAB_CACHE_DIR", str(tmp_path))
    first = compiled.library_path()
    assert first.is_relative_to(tmp_path) and first.name == f"{compiled.NAME}.so"
    source = tmp_path / "sweep_steps.cpp"
    source.write_text(compiled.SOURCES[0].read_text() + "\n// changed\n")
    with monkeypatch.context() as changed:
        changed.setattr(compiled, "SOURCES", [source, *compiled.SOURCES[1:]])
        assert compiled.library_path() != first
    header = tmp_path / "activations.h"
    header.write_text(compiled.HEADERS[-1].read_text() + "\n// changed\n")
    monkeypatch.setattr(compiled, "HEADERS", [*compiled.HEADERS[:-1], header])
    assert compiled.library_path() != first


@pytest.fixture
def two_threads():
    """torch's intra-op pool at two threads for the test (the suite runs at one, conftest.py)."""
    was = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(was)


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("log_domain", [True, False], ids=["log", "plain"])
@pytest.mark.parametrize("batch", [1, 5, 8])
def test_slices_of_the_batch_on_two_threads_agree_with_one(config, log_domain, batch, two_threads, monkeypatch):
    """With two threads a compiled span runs as two slices of the batch, each with its own matrix
    product; every sample's gradients are those of the one-thread run (float64, 1e-12 of each step's
    largest entry), whatever the batch size (odd, or a single sample that cannot be split)."""
    kind, kwargs = config
    model = make_model(kind, kwargs, input_size=3, hidden_size=7, num_layers=2, bidirectional=True)
    x, g, end = sweep_inputs(model, 60, batch, "scattered", torch.float64)
    calls = counted_kernels(monkeypatch)
    parallel = gradlab.bptt(model, x, g, grad_state=end, log_domain=log_domain)
    torch.set_num_threads(1)
    serial = gradlab.bptt(model, x, g, grad_state=end, log_domain=log_domain)
    assert sum(calls.values()) > 0
    assert_close_per_step(parallel, serial, model, 1e-12)


def pool_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not (HAS_TOOLCHAIN and compiled.shares_torch_openmp()), reason="no OpenMP build here")
def test_the_slices_run_on_torchs_own_threads(two_threads):
    """The library's OpenMP is the libgomp torch runs its pool on: a sweep adds no thread, and the only
    copy of the soname libgomp.so.1 in the process is torch's (other packages' vendored copies, such as
    scikit-learn's libgomp-<hash>.so, have sonames of their own)."""
    torch.randn(512, 512) @ torch.randn(512, 512)  # torch's pool started
    before = pool_threads()
    gradlab.record(torch.nn.LSTM(3, 16), torch.randn(50, 8, 3), lambda out: out[-1].sum())
    assert pool_threads() == before
    with open("/proc/self/maps") as maps:
        gomp = {os.path.realpath(line.split()[-1]) for line in maps if "/libgomp.so" in line}
    assert gomp == {os.path.realpath(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1"))}, gomp


@pytest.mark.skipif(not HAS_TOOLCHAIN, reason="no C++ compiler")
def test_every_thread_keeps_its_subnormals_after_a_log_domain_sweep(two_threads):
    """The log-domain steps flush subnormal floats on every thread of the pool while they run, and
    leave each thread's setting as it found it: a two-thread product afterwards keeps them."""
    gradlab.record(torch.nn.GRU(3, 16), torch.randn(50, 8, 3), lambda out: out[-1].sum())
    tiny = torch.full((1 << 20,), 1e-40)  # float32 subnormals, split across both threads below
    kept = (tiny * 1.0).view(torch.int32) == tiny.view(torch.int32)  # bits: a float compare would read them as 0 too
    assert bool(kept.all())
