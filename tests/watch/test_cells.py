"""Cells stepped by hand in the user's loop (as the seed courses step nn.LSTMCell): each call is a
time step; totals equal torch.autograd.grad(loss, h_t), the explicit part the loss's direct term."""

import numpy as np
import pytest
import torch
from torch import nn

import gradlab

DT = torch.float64
T, B = 6, 3


class Loop(nn.Module):
    def __init__(self, cell):
        super().__init__()
        torch.manual_seed(0)
        self.cell, self.head = cell, nn.Linear(4, 1, dtype=DT)

    def forward(self, x, keep=None):
        h = c = torch.zeros(B, 4, dtype=DT)
        weights = torch.linspace(0.5, 2.0, T, dtype=DT)
        loss = 0
        for t in range(T):
            out = self.cell(x[t], (h, c)) if isinstance(self.cell, nn.LSTMCell) else self.cell(x[t], h)
            h, c = out if isinstance(out, tuple) else (out, c)
            if keep is not None:
                keep.append((h, c))
            loss = loss + weights[t] * self.head(h).sum()  # the loss reads every step
        return loss + c.pow(2).sum()


class MyCell(nn.Module):
    """A user's own recurrence: forward(x, h) returns the next h."""

    def __init__(self):
        super().__init__()
        self.w, self.u = nn.Linear(3, 4, dtype=DT), nn.Linear(4, 4, bias=False, dtype=DT)

    def forward(self, x, h):
        return torch.tanh(self.w(x) + self.u(h))


@pytest.mark.parametrize("make,names", [(lambda: nn.RNNCell(3, 4, dtype=DT), None),
                                        (lambda: nn.GRUCell(3, 4, dtype=DT), None),
                                        (lambda: nn.LSTMCell(3, 4, dtype=DT), None),
                                        (MyCell, ["cell"])], ids=["rnn", "gru", "lstm", "custom"])
def test_every_call_of_a_cell_is_a_step_with_autograds_total_and_the_direct_explicit_part(make, names):
    model = Loop(make())
    x = torch.randn(T, B, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    with gradlab.watch(model, cells=names, full=True) as w:
        model(x).backward()
    (step,) = w.traces
    trace = step["cell"]
    assert trace.num_steps == T and trace.batch_size == B
    states = []
    loss = model(x, keep=states)  # the same loop, unwatched, keeping every returned state
    is_lstm = isinstance(model.cell, nn.LSTMCell)
    wrt = [h for h, _ in states] + ([c for _, c in states] if is_lstm else [])
    totals = torch.autograd.grad(loss, wrt)
    for t in range(T):
        torch.testing.assert_close(trace.grad("h")[t], totals[t], atol=1e-13, rtol=1e-12)
        if is_lstm:
            torch.testing.assert_close(trace.grad("c")[t], totals[T + t], atol=1e-13, rtol=1e-12)
    weights = torch.linspace(0.5, 2.0, T, dtype=DT)
    direct = weights[:, None, None] * model.head.weight.detach()[0].expand(T, B, 4)  # ∂(w_t·head(h_t))/∂h_t
    torch.testing.assert_close(trace.explicit_grad(), direct, atol=1e-13, rtol=1e-12)
    np.testing.assert_allclose(trace.log10_grad_norms("h"), np.log10(trace.grad_norms("h")))


def test_cells_share_the_step_count_and_only_recorded_steps_keep_anything(tmp_path):
    model = Loop(nn.GRUCell(3, 4, dtype=DT))
    x = torch.randn(T, B, 3, dtype=DT)
    with gradlab.watch(model, every=2, out=tmp_path) as w:
        for _ in range(5):
            model(x).backward()
            with torch.no_grad():
                model(x)
    assert w.step == 5 and [s.step for s in w.traces] == [0, 2, 4]
    assert all(s["cell"].num_steps == T for s in w.traces)
    again = gradlab.load_watch(w.run_dir.path)
    assert [s.step for s in again] == [0, 2, 4]
    np.testing.assert_array_equal(again[1]["cell"].grad_norms("h"), w.traces[1]["cell"].grad_norms("h"))


def test_a_name_in_cells_that_the_model_lacks_is_refused():
    with pytest.raises(ValueError, match="cells names 'decoder.cell'"):
        gradlab.watch(Loop(MyCell()), cells=["decoder.cell"])
