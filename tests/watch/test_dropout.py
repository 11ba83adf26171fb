"""Dropout between layers in training mode: the watched step replays torch's masks exactly, draws
no random numbers of its own, and refuses what it cannot check."""

import copy
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import gradlab
import gradlab.models.dropout as dropout_module
from gradlab.engine.reference import autograd_reference

DT = torch.float64
replay_module = importlib.import_module("gradlab.watch.replay")  # gradlab.watch is also the function
T, B, I, H = 6, 3, 4, 5
LENGTHS = torch.tensor([6, 2, 4])


class Model(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        gen = torch.Generator().manual_seed(3)
        D = 2 if rnn.bidirectional else 1
        self.g_out = torch.randn(T, B, D * H, generator=gen, dtype=DT)
        self.g_final = torch.randn(rnn.num_layers * D, B, H, generator=gen, dtype=DT)

    def loss(self, x):
        out, final = self.rnn(x)
        out = nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0] if hasattr(out, "batch_sizes") else out
        h = final[0] if isinstance(final, tuple) else final
        return (out * self.g_out).sum() + (h * self.g_final).sum()


def inputs(packed):
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(4), dtype=DT)
    return pack_padded_sequence(x, LENGTHS, enforce_sorted=False) if packed else x


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("backward", ["torch", "gradlab"])
def test_a_watched_step_with_dropout_is_exact_for_the_masks_torch_drew(cls, bidirectional, packed, backward):
    torch.manual_seed(0)
    model = Model(cls(I, H, num_layers=3, dropout=0.3, bidirectional=bidirectional, dtype=DT))
    twin = copy.deepcopy(model)
    x = inputs(packed)
    torch.manual_seed(11)
    with gradlab.watch(model, full=True, backward=backward) as w:
        model.loss(x).backward()
        followed = torch.rand(3)  # the generator continues as if gradlab were absent
    torch.manual_seed(11)
    twin.loss(x).backward()  # unwatched: torch's fused kernels and their own masks
    torch.testing.assert_close(followed, torch.rand(3), rtol=0, atol=0)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    trace = w.traces[0]["rnn"]
    assert "replayed" in trace.meta["dropout"]
    # the reference: autograd through gradlab's unrolled twin with the masks drawn from the same seed
    # (torch draws nothing but the masks, one per layer boundary, on [T, B, D·H] or the packed data)
    torch.manual_seed(11)
    ref_model = gradlab.from_torch(twin.rnn)
    layout = ref_model.layout_of(x)
    ones = layout.time_major(x).new_ones(T, B, ref_model.num_directions * H)
    masks = [dropout_module.dropout_multiplier(ones, 0.3, layout.packing) for _ in range(2)]
    grad_out = layout.restore(model.g_out) if packed else model.g_out
    want = autograd_reference(ref_model, x, grad_out, grad_state=model.g_final if cls is not nn.LSTM
                              else (model.g_final, torch.zeros_like(model.g_final)), dropout_masks=masks)
    for name in trace.names:
        for k in range(3):
            for d in range(ref_model.num_directions):
                a, b = trace.grad(name, k, d), want.grad(name, k, d)
                assert (a - b).abs().max() <= 1e-10 * b.abs().max(), (name, k, d)
    # and the log-domain sweep, which draws nothing, ran on the same masks
    for k in range(3):
        log10 = np.ma.filled(trace.log10_grad_norms("h", k, 0), 0.0)
        plain = np.ma.filled(trace.grad_norms("h", k, 0), 1.0)
        np.testing.assert_allclose(log10, np.log10(plain), atol=1e-9)


def test_masks_are_checked_a_replay_that_draws_or_computes_otherwise_is_refused(monkeypatch):
    torch.manual_seed(0)
    model = Model(nn.GRU(I, H, num_layers=2, dropout=0.5, dtype=DT))
    real = dropout_module.dropout_multiplier
    monkeypatch.setattr(replay_module, "dropout_multiplier",
                        lambda seq, p, packing: (torch.rand(1), real(seq, p, packing))[1])  # one number too many
    with gradlab.watch(model):
        with pytest.raises(RuntimeError, match="drew other random numbers"):
            model.loss(inputs(False))
    monkeypatch.setattr(replay_module, "dropout_multiplier",
                        lambda seq, p, packing: real(seq, p, packing).flip(0))  # the same draws, other places
    with gradlab.watch(model):
        loss = model.loss(inputs(False))
        with pytest.raises(RuntimeError, match="away from the output that ran.*dropout masks were not"):
            loss.backward()
    assert not model.rnn._forward_hooks and not model.rnn._forward_pre_hooks


def test_bptt_and_the_engine_need_the_masks_a_training_forward_used():
    model = gradlab.LSTM(I, H, num_layers=2, dropout=0.5, dtype=DT)
    x = inputs(False)
    with pytest.raises(ValueError, match="pass dropout_masks="):
        gradlab.bptt(model, x, torch.ones(T, B, H, dtype=DT))
    with pytest.raises(ValueError, match="call model.eval"):
        gradlab.checkpointed_norms(model, lambda t0, t1: x[t0:t1], lambda t0, t1: torch.ones(t1 - t0, B, H, dtype=DT),
                                   T, B, progress=False)
    with pytest.raises(ValueError, match=r"dropout_masks must be \[T, B, D·H\]"):
        gradlab.bptt(model, x, torch.ones(T, B, H, dtype=DT), dropout_masks=[torch.ones(T, B, 2 * H, dtype=DT)])
    masks = [F.dropout(torch.ones(T, B, H, dtype=DT), 0.5, True)]
    got = gradlab.bptt(model, x, torch.ones(T, B, H, dtype=DT), dropout_masks=masks, log_domain=True)
    want = autograd_reference(model, x, torch.ones(T, B, H, dtype=DT), dropout_masks=masks)
    for name, g in want.param_grads.items():
        torch.testing.assert_close(got.param_grads[name], g, rtol=1e-10, atol=1e-12, msg=name)
    torch.testing.assert_close(got.grad("c", 0), want.grad("c", 0), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_a_recorded_step_with_dropout_is_refused():
    model = Model(nn.LSTM(I, H, num_layers=2, dropout=0.5, dtype=DT)).cuda()
    model.g_out, model.g_final = model.g_out.cuda(), model.g_final.cuda()
    with gradlab.watch(model):
        with pytest.raises(RuntimeError, match="cuDNN's masks cannot be replayed"):
            model.loss(inputs(False).cuda())
