"""The log-domain sweep rescales its carry by powers of two, so running a block of steps without
rescaling (gradlab.engine.logscale.BLOCK) gives what rescaling at every step gives, to rounding; a
block whose values leave [LOW, HIGH] is run again step by step. Blocks are the eager steps' economy:
compiled steps rescale at every step (tests/engine/test_compiled.py holds them to the eager ones)."""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import gradlab
from gradlab.engine import logscale
from gradlab.models.architectures.base import ENTERED, FINAL, QUIET
from helpers import MODEL_CONFIGS, MODEL_IDS, assert_close_per_step, make_model, sweep_inputs

TOLERANCES = [(torch.float32, 1e-6), (torch.float64, 1e-13)]


def sweep(model, x, g, end, block, monkeypatch):
    """bptt in the log domain with blocks of ``block`` steps, on the eager steps (the only ones that
    run in blocks)."""
    monkeypatch.setattr(logscale, "BLOCK", block)
    monkeypatch.setenv("GRADLAB_COMPILED", "0")
    return gradlab.bptt(model, x, g, grad_state=end, log_domain=True)


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("dtype,tol", TOLERANCES)
@pytest.mark.parametrize("loss", ["last", "scattered", "all"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_blocks_agree_with_rescaling_every_step_to_rounding(config, dtype, tol, loss, layers, bidirectional,
                                                             monkeypatch):
    """The carry's values are the same in blocks (rescaling by powers of two is exact); its log scale
    λ, a float64 sum of multiples of ln 2, is summed in another grouping, so values read through
    exp(λ) (plain gradients, merges with explicit gradients, the two directions' sum) may differ by
    rounding: within a few ulp of each step's largest entry."""
    kind, kwargs = config
    model = make_model(kind, kwargs, input_size=3, hidden_size=8, num_layers=layers, bidirectional=bidirectional,
                       dtype=dtype)
    x, g, end = sweep_inputs(model, 75, 4, loss, dtype)  # T = 75, not a multiple of the block: the last is short
    every_step = sweep(model, x, g, end, 1, monkeypatch)
    for block in (16, 5):
        assert_close_per_step(sweep(model, x, g, end, block, monkeypatch), every_step, model, tol)


@pytest.mark.parametrize("kind", ["srn", "lstm", "gru"])
def test_packed_batches_agree_in_blocks(kind, monkeypatch):
    """Each sample's final-state gradient enters at its own last step, which runs step by step."""
    model = make_model(kind, {}, input_size=3, hidden_size=6, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([60, 47, 33, 1])
    x = pack_padded_sequence(torch.randn(60, 4, 3, generator=gen), lengths)
    out, _ = model(x)
    g = out._replace(data=torch.zeros_like(out.data))
    parts = [torch.randn(1, 4, 6, generator=gen) for _ in model.state_names]
    end = parts[0] if len(parts) == 1 else tuple(parts)
    assert_close_per_step(sweep(model, x, g, end, 16, monkeypatch), sweep(model, x, g, end, 1, monkeypatch), model,
                          1e-6)


@pytest.mark.parametrize("rho", [1e-2, 1e2])
def test_a_block_that_leaves_the_range_runs_again_step_by_step(rho, monkeypatch):
    """A linear SRN with W_hh = ρ·Q (Q orthogonal) changes ‖∂L/∂h_t‖ by exactly ρ per step: 16 steps
    of ρ = 10^∓2 leave [2⁻⁶⁰, 2⁶⁰], so every block is run again, and the result is that of rescaling
    every step."""
    H, T = 6, 1 + 8 * 16  # the last step merges the loss, eight quiet blocks below it; 10^±256 fits float64
    Q, _ = torch.linalg.qr(torch.randn(H, H, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    model = gradlab.SRN(2, H, nonlinearity="linear", bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight_hh_l0.copy_(rho * Q)
    x = torch.zeros(T, 2, 2, dtype=torch.float64)
    g = torch.zeros(T, 2, H, dtype=torch.float64)
    g[-1] = 1.0
    checks = []
    in_range = logscale.LogScale._in_range
    monkeypatch.setattr(logscale.LogScale, "_in_range",
                        lambda self, lo, hi: checks.append(in_range(self, lo, hi)) or checks[-1])
    blocks = sweep(model, x, g, None, 16, monkeypatch)
    assert len(checks) == 8 and not any(checks)  # every quiet block checked, and run again
    every_step = sweep(model, x, g, None, 1, monkeypatch)
    assert_close_per_step(blocks, every_step, model, 1e-13)
    log10 = blocks.log10_grad_norms("h", 0)[:, 0]
    np.testing.assert_allclose(log10[:-1] - log10[1:], np.log10(rho), atol=1e-9, rtol=0)


def test_only_the_steps_that_merge_run_entered():
    """Consecutive steps with an explicit gradient are one entered span (each step rescaled); a step
    where a final state enters is alone; the steps between, at most BLOCK at a time, are quiet spans
    (a single one is entered: it is rescaled after it anyway)."""
    T, B, H = 40, 2, 3
    explicit_log = torch.full((T, B), logscale.LOG_ZERO, dtype=torch.float64)
    explicit_log[[39, 30, 29, 28, 5]] = 0.0
    final = (torch.tensor([21, 5]), (torch.ones(B, H),), torch.zeros(B, dtype=torch.float64))
    scale = logscale.LogScale(torch.ones(T, B, H), explicit_log, torch.zeros(B, dtype=torch.float64), final=final)
    scale.track(torch.full((T, B, H), 0.75))  # every stored row in range
    spans = list(scale.spans(T, (torch.full((B, H), 0.75),)))
    assert spans == [(39, 39, ENTERED), (38, 31, QUIET), (30, 28, ENTERED), (27, 22, QUIET), (21, 21, FINAL),
                     (20, 6, QUIET), (5, 5, FINAL), (4, 0, QUIET)]
    plain = logscale.PlainScale(torch.zeros(T, B, H).index_fill_(0, torch.tensor([39, 30, 29, 28, 5]), 1.0),
                                final=final[:2])
    assert list(plain.spans(T, ())) == [(39, 39, ENTERED), (38, 31, QUIET), (30, 28, ENTERED), (27, 22, QUIET),
                                        (21, 21, FINAL), (20, 6, QUIET), (5, 5, FINAL), (4, 0, QUIET)]
    assert [kind for *_, kind in logscale.LogScale(torch.ones(3, B, H), explicit_log[:3], torch.zeros(
        B, dtype=torch.float64), block=1).spans(3, (torch.ones(B, H),))] == [ENTERED]  # block 1: every step rescaled
    # compiled steps: every step entered and rescaled, in one span between the final states' steps
    assert list(scale.spans(T, (torch.full((B, H), 0.75),), compiled=True)) == [
        (39, 22, ENTERED), (21, 21, FINAL), (20, 6, ENTERED), (5, 5, FINAL), (4, 0, ENTERED)]
    assert list(plain.spans(T, (), compiled=True)) == list(plain.spans(T, ()))  # plain carries need no rescaling


def test_a_row_that_fell_to_zero_in_a_block_counts_as_out_of_range_unless_it_entered_as_zero():
    """An exact 0 may be an underflow (a step that shrank a row by more than float's range), so the
    block is run again step by step, unless that sample's carry was already 0 when the block began."""
    B, H = 2, 4
    scale = logscale.LogScale(torch.zeros(3, B, H), torch.full((3, B), logscale.LOG_ZERO, dtype=torch.float64),
                              torch.zeros(B, dtype=torch.float64))
    out = torch.full((3, B, H), 0.75)
    out[1, 0] = 0.0
    scale.track(out)
    scale._zero = torch.tensor([False, False])
    assert not scale._in_range(0, 2)
    scale._zero = torch.tensor([True, False])
    assert scale._in_range(0, 2)
    out[2, 1, 0] = 2.0 ** 61  # and a row that grew past HIGH
    assert not scale._in_range(0, 2)
