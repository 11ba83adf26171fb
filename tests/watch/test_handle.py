"""gradlab.watch on a user's own model in the user's own loop: exact per-step gradients, the user's
gradients unchanged, steps counted as backward passes, and no hook left behind."""

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gradlab

DT = torch.float64


class Tagger(nn.Module):
    """An embedding, a stacked bidirectional LSTM fed packed variable-length batches, a head."""

    def __init__(self, rnn=None):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 5, dtype=DT)
        self.rnn = rnn or nn.LSTM(5, 4, num_layers=2, bidirectional=True, dtype=DT)
        self.head = nn.Linear(8, 3, dtype=DT)

    def forward(self, tokens, lengths):
        out, final = self.rnn(pack_padded_sequence(self.emb(tokens), lengths, enforce_sorted=False))
        return self.head(pad_packed_sequence(out)[0]), final


TOKENS = torch.randint(0, 10, (7, 3), generator=torch.Generator().manual_seed(1))
LENGTHS = torch.tensor([7, 3, 5])


def loss_of(y, final):
    h, c = final
    return y.pow(2).sum() + h.sum() + c.pow(2).sum()  # reads the outputs, h_n and c_n


def test_a_watched_step_records_what_record_would_and_changes_no_gradient():
    model = Tagger()
    twin = copy.deepcopy(model)
    with gradlab.watch(model, full=True) as w:
        loss_of(*model(TOKENS, LENGTHS)).backward()
    loss_of(*twin(TOKENS, LENGTHS)).backward()  # unwatched: torch's fused kernels
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=1e-10, msg=name)
    (step,) = w.traces
    assert step.step == 0 and set(step) == {"rnn"}
    trace = step["rnn"]
    # the same gradients from gradlab.record, with the rest of the model as the loss of the LSTM
    x = pack_padded_sequence(twin.emb(TOKENS).detach(), LENGTHS, enforce_sorted=False)
    want = gradlab.record(twin.rnn, x, lambda out, final: loss_of(twin.head(pad_packed_sequence(out)[0]), final))
    assert (trace.mask == want.mask).all() and trace.mask.sum() == int(LENGTHS.sum())
    for name in ("h", "c"):
        for k in range(2):
            for d in range(2):
                np.testing.assert_allclose(trace.grad_norms(name, k, d).compressed(),
                                           want.grad_norms(name, k, d).compressed(), rtol=1e-10)
                np.testing.assert_allclose(trace.log10_grad_norms(name, k, d).compressed(),
                                           want.log10_grad_norms(name, k, d).compressed(), atol=1e-10)
            np.testing.assert_allclose(trace.explicit_grad_norms(k, d).compressed(),
                                       want.explicit_grad_norms(k, d).compressed(), rtol=1e-10)
    assert trace.has_tensors and "gradlab.watch" in trace.meta["engine"]


def test_steps_are_backward_passes_recorded_first_and_then_every_nth():
    model = Tagger()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlab.watch(model, every=3, start_step=10) as w:
        for _ in range(4):  # four optimiser steps of two micro-batches each: eight steps
            opt.zero_grad()
            for _ in range(2):
                loss_of(*model(TOKENS, LENGTHS)).backward()
            opt.step()
            with torch.no_grad():  # validation is not a step
                model(TOKENS, LENGTHS)
    assert w.step == 18
    assert [t.step for t in w.traces] == [10, 13, 16]


def test_with_backward_gradlab_the_recorded_sweep_is_the_modules_backward_pass():
    """torch's fused backward does not run on a recorded step (its graph is dropped); the sweep's
    gradients reach .grad, a second backward through a retained graph adds them again, the steps that
    are not recorded keep torch's backward, and a double backward through the sweep is refused."""
    model, twin = Tagger(), Tagger()
    with gradlab.watch(model, every=2, backward="gradlab") as w:
        out = model(TOKENS, LENGTHS)
        names = set()
        fn = out[1][0].grad_fn  # h_n: an output of the sweep's Function, not of torch's fused LSTM
        names.add(type(fn).__name__)
        loss_of(*out).backward(retain_graph=True)
        loss_of(*out).backward()  # twice through the same graph: gradients accumulate, one record
        unrecorded = model(TOKENS, LENGTHS)  # step 1: not recorded, torch's own graph
        names.add(type(unrecorded[1][0].grad_fn).__name__)
        loss_of(*unrecorded).backward()
    for _ in range(3):
        loss_of(*twin(TOKENS, LENGTHS)).backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=1e-10, msg=name)
    assert [s.step for s in w.traces] == [0] and "SweptBackwardBackward" in names and len(names) == 2
    with gradlab.watch(model, backward="gradlab"):
        loss = loss_of(*model(TOKENS, LENGTHS))
        (g,) = torch.autograd.grad(loss, [model.emb.weight], create_graph=True)
        with pytest.raises(RuntimeError, match="once_differentiable"):
            g.sum().backward()
    with gradlab.watch(model, backward="gradlab") as w:
        out = model(TOKENS, LENGTHS)
    model.zero_grad()
    twin.zero_grad()
    loss_of(*out).backward()  # after the watch is removed: nothing recorded, the gradients still right
    loss_of(*twin(TOKENS, LENGTHS)).backward()
    assert w.traces == []
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=1e-10, msg=name)


def test_a_module_called_twice_in_one_step_is_recorded_per_call():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4, dtype=DT)

        def forward(self, a, b):
            return self.rnn(a)[0].sum() + self.rnn(b)[1].pow(2).sum()

    model = Twice()
    a, b = torch.randn(5, 2, 3, dtype=DT), torch.randn(4, 2, 3, dtype=DT)
    with gradlab.watch(model) as w:
        model(a, b).backward()
    (step,) = w.traces
    assert list(step) == ["rnn", "rnn#1"]
    assert step["rnn"].num_steps == 5 and step["rnn#1"].num_steps == 4
    want = gradlab.record(model.rnn, b, lambda out, final: final.pow(2).sum())
    np.testing.assert_allclose(step["rnn#1"].grad_norms("h"), want.grad_norms("h"), rtol=1e-10)


def test_no_hook_outlives_the_watch_also_after_an_exception():
    model = Tagger()
    with pytest.raises(ZeroDivisionError):
        with gradlab.watch(model):
            model(TOKENS, LENGTHS)
            1 / 0
    assert not model.rnn._forward_hooks
    w = gradlab.watch(model)
    assert model.rnn._forward_hooks
    w.remove()
    w.remove()
    assert not model.rnn._forward_hooks


def test_a_gradlab_model_inside_a_users_model_is_watched_too():
    model = Tagger(rnn=gradlab.LSTM(5, 4, num_layers=2, bidirectional=True, dtype=DT))
    with gradlab.watch(model) as w:
        loss_of(*model(TOKENS, LENGTHS)).backward()
    assert w.traces[0]["rnn"].num_directions == 2


def test_what_watch_cannot_record_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="holds no torch.nn.RNN"):
        gradlab.watch(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        gradlab.watch(Tagger(), every=0)
    with pytest.raises(ValueError, match="out must be a directory path, got an empty one"):
        gradlab.watch(Tagger(), out="")
    with pytest.raises(ValueError, match="all_ranks must be True or False"):
        gradlab.watch(Tagger(), all_ranks="yes")
    with pytest.raises(ValueError, match="backward must be one of 'torch', 'gradlab', got 'fused'"):
        gradlab.watch(Tagger(), backward="fused")
    model = Tagger()
    with warnings.catch_warnings():  # importing torch._dynamo in torch 2.13 on Python 3.11
        warnings.filterwarnings("ignore", message="`torch.jit.script_method` is deprecated", category=DeprecationWarning)
        model.rnn = torch.compile(model.rnn)  # compiles lazily: nothing is traced here
    with pytest.raises(ValueError, match=r"model \(rnn\) is compiled with torch.compile"):
        gradlab.watch(model)


def test_the_distance_sweep_is_seeded_only_at_each_samples_last_step():
    """With a loss on every step, the decay is measured by a second sweep seeded with the explicit
    gradient at each sample's last step (position len−1 forward, 0 reverse) and dL/dh_n."""
    model = Tagger()
    with gradlab.watch(model) as w:
        loss_of(*model(TOKENS, LENGTHS)).backward()
    trace = w.traces[0]["rnn"]
    rnn = model.rnn
    x = pack_padded_sequence(model.emb(TOKENS).detach(), LENGTHS, enforce_sorted=False)
    out, final = rnn(x)
    data = out.data.detach().requires_grad_(True)
    parts = tuple(f.detach().requires_grad_(True) for f in final)
    loss = loss_of(model.head(pad_packed_sequence(out._replace(data=data))[0]), parts)
    g_out, g_h, g_c = torch.autograd.grad(loss, [data, *parts])
    padded = pad_packed_sequence(out._replace(data=g_out))[0]  # [T, B, 8]
    seeded = torch.zeros_like(padded)
    batch = torch.arange(3)
    seeded[LENGTHS - 1, batch, :4] = padded[LENGTHS - 1, batch, :4]  # forward half: each sample's last position
    seeded[0, :, 4:] = padded[0, :, 4:]  # reverse half: position 0
    want = gradlab.bptt(rnn, x, pack_padded_sequence(seeded, LENGTHS, enforce_sorted=False), grad_state=(g_h, g_c),
                        log_domain=True)
    for name in ("h", "c"):
        for d in range(2):
            np.testing.assert_allclose(trace.distance_log10_grad_norms(name, 0, d).compressed(),
                                       want.log10_grad_norms(name, 0, d).compressed(), atol=1e-10)
    profile, fit, horizon = gradlab.decay_of(trace, "c", layer=0, direction=1)
    assert len(profile.distance) == 7 and fit.factor is not None and 0 < fit.factor < 1


@pytest.mark.parametrize("reads", ["last", "first", "last and third"])
@pytest.mark.parametrize("backward", ["torch", "gradlab"])
def test_the_distance_sweep_of_every_layer_equals_bptt_seeded_at_the_last_steps(reads, backward):
    """A top direction whose explicit gradient is all at its last step (forward: position T−1, reverse:
    0) sweeps as in the total sweep, which the watch takes again; every layer and direction still equals
    bptt seeded at the last steps."""
    torch.manual_seed(0)
    rnn = nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=DT)
    x = torch.randn(6, 2, 3, dtype=DT)
    weights = torch.randn(6, 2, 8, dtype=DT)
    at = {"last": [5], "first": [0], "last and third": [5, 2]}[reads]

    def loss_of(out):
        return sum((out[t] * weights[t]).pow(2).sum() for t in at)

    with gradlab.watch(rnn, backward=backward) as w:
        loss_of(rnn(x)[0]).backward()
    trace = w.traces[0][""]
    out = rnn(x)[0].detach().requires_grad_(True)
    (g_out,) = torch.autograd.grad(loss_of(out), [out])
    seeded = torch.zeros_like(g_out)
    seeded[-1, :, :4], seeded[0, :, 4:] = g_out[-1, :, :4], g_out[0, :, 4:]
    want = gradlab.bptt(rnn, x, seeded, log_domain=True)
    for name in ("h", "c"):
        for k in range(2):
            for d in range(2):
                np.testing.assert_allclose(trace.distance_log10_grad_norms(name, k, d),
                                           want.log10_grad_norms(name, k, d), atol=1e-10, err_msg=f"{name}{k}{d}")


def test_a_module_the_loss_does_not_read_is_left_out_of_its_step():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.used, self.unused = nn.GRU(3, 4, dtype=DT), nn.LSTM(3, 4, dtype=DT)

        def forward(self, x):
            self.unused(x)  # computed, never part of the loss
            return self.used(x)[0].pow(2).sum()

    model = Two()
    with gradlab.watch(model, every=2) as w:
        for _ in range(3):
            model(torch.randn(5, 2, 3, dtype=DT)).backward()
        assert [s.step for s in w.traces] == [0, 2] and all(set(s) == {"used"} for s in w.traces)


def test_a_loss_on_the_final_state_alone_takes_every_step():
    rnn = nn.GRU(3, 4, dtype=DT)
    with gradlab.watch(rnn, every=2) as w:
        for _ in range(3):
            rnn(torch.randn(5, 2, 3, dtype=DT))[1].pow(2).sum().backward()  # reads h_n, not the output
    assert [s.step for s in w.traces] == [0, 2] and w.step == 3


def test_a_backward_pass_after_the_watch_is_removed_records_nothing(tmp_path):
    rnn = nn.LSTM(3, 4, dtype=DT)
    with gradlab.watch(rnn, out=tmp_path) as w:
        y = rnn(torch.randn(5, 2, 3, dtype=DT))[0]
    y.sum().backward()  # after the watch ended: the user's gradients, and nothing of gradlab's
    assert w.traces == [] and w.step == 0 and rnn.weight_hh_l0.grad is not None
    assert gradlab.load_watch(w.run_dir.path) == []
