"""Helpers the tests share: tiny models and inputs, the CUDA skip mark."""

import numpy as np
import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODEL_CONFIGS = [
    ("srn", {"nonlinearity": "tanh"}),
    ("srn", {"nonlinearity": "relu"}),
    ("srn", {"nonlinearity": "linear"}),
    ("lstm", {}),
    ("gru", {}),
]
MODEL_IDS = ["srn-tanh", "srn-relu", "srn-linear", "lstm", "gru"]


def make_model(kind, kwargs, input_size=3, hidden_size=4, num_layers=1, batch_first=False,
               bias=True, dtype=torch.float64, device="cpu", seed=0, bidirectional=False):
    import gradlab

    torch.manual_seed(seed)
    cls = {"srn": gradlab.SRN, "lstm": gradlab.LSTM, "gru": gradlab.GRU}[kind]
    return cls(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=batch_first,
               bidirectional=bidirectional, dtype=dtype, device=device, **kwargs)


def make_input(model, T=6, B=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    shape = (B, T, model.input_size) if model.batch_first else (T, B, model.input_size)
    return torch.randn(shape, generator=g, dtype=p.dtype).to(p.device)


def assert_close_per_step(a, b, model, tol):
    """Every step's row of every gradient within ``tol`` of the row's largest (finite) entry; log10 norms
    within ``tol``; the norms of the plain values (total and explicit) within ``tol`` relative; parameter
    and input gradients within ``tol`` of their largest entry."""
    for name in model.state_names:
        for k in range(model.num_layers):
            for d in range(2 if model.bidirectional else 1):
                ga, gb = a.grad(name, k, d), b.grad(name, k, d)
                finite = torch.isfinite(gb)  # past float's range both read inf (or 0.0), alike
                assert torch.equal(finite, torch.isfinite(ga)) and torch.equal(ga[~finite], gb[~finite])
                ga, gb = ga.where(finite, 0), gb.where(finite, 0)
                assert ((ga - gb).abs().amax(-1) <= tol * gb.abs().amax(-1)).all()
                np.testing.assert_allclose(a.log10_grad_norms(name, k, d), b.log10_grad_norms(name, k, d),
                                           rtol=0, atol=tol)
        np.testing.assert_allclose(a.norms[name], b.norms[name], rtol=tol, atol=0)
    np.testing.assert_allclose(a.explicit_norms, b.explicit_norms, rtol=tol, atol=0)
    np.testing.assert_allclose(a.explicit_log10_norms, b.explicit_log10_norms, rtol=0, atol=tol)
    for (n, pa), (_, pb) in zip(a.param_grads.items(), b.param_grads.items()):
        assert (pa - pb).abs().max() <= tol * pb.abs().max(), n
    ia, ib = (getattr(t.input_grad, "data", t.input_grad) for t in (a, b))  # packed: its data
    assert (ia - ib).abs().max() <= tol * ib.abs().max()


def sweep_inputs(model, T, B, loss, dtype, seed=3):
    """(x [T, B, 3], ∂L/∂output with the loss on the last step, on a few scattered steps or on all, the
    gradient on the final state) for a sweep test."""
    gen = torch.Generator().manual_seed(seed)
    D = 2 if model.bidirectional else 1
    x = torch.randn(T, B, 3, generator=gen, dtype=dtype)
    g = torch.randn(T, B, D * model.output_size, generator=gen, dtype=dtype)
    if loss == "last":
        g[:-1] = 0
    elif loss == "scattered":
        g[[i for i in range(T) if i not in (5, 40, 41, T - 1)]] = 0
    parts = [torch.randn(D * model.num_layers, B, model.output_size if name == "h" else model.hidden_size,
                         generator=gen, dtype=dtype) for name in model.state_names]
    return x, g, parts[0] if len(parts) == 1 else tuple(parts)


def counted_kernels(monkeypatch):
    """Make every architecture's compiled steps (forward and backward) count their calls; returns the
    counts by op name."""
    from gradlab.models.architectures import compiled, gru, lstm, srn

    calls: dict[str, int] = {}

    class Counting:
        def __init__(self, ops):
            self.ops = ops

        def __getattr__(self, name):
            op = getattr(self.ops, name)

            def call(*args):
                calls[name] = calls.get(name, 0) + 1
                return op(*args)
            return call

    def counting(like):
        ops = compiled.kernels(like)
        return None if ops is None else Counting(ops)

    for module in (lstm, gru, srn):
        monkeypatch.setattr(module, "kernels", counting)
    return calls
