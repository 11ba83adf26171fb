"""The checkpointed log-domain driver equals the whole-sequence sweep, at any segment length."""

import numpy as np
import pytest
import torch

import gradlab
from helpers import MODEL_CONFIGS, MODEL_IDS, make_model
from gradlab.engine.checkpointed import checkpointed_norms, segment_length


@pytest.mark.parametrize("kind,kwargs", MODEL_CONFIGS, ids=MODEL_IDS)
@pytest.mark.parametrize("segment", [None, 1, 7, 100])
def test_checkpointed_equals_the_whole_sequence(kind, kwargs, segment):
    model = make_model(kind, kwargs, num_layers=2)
    T, B = 41, 3
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(T, B, 4, generator=gen, dtype=torch.float64)
    whole = gradlab.bptt(model, x, g, log_domain=True)
    output = model(x)[0].detach()
    calls = []

    def explicit(t0, t1, out):
        calls.append((t0, t1))
        torch.testing.assert_close(out, output[t0:t1])  # the recomputed segment is the real one
        return g[t0:t1]

    res = checkpointed_norms(model, lambda a, b: x[a:b], explicit, T, B, segment=segment, progress=False)
    for k in range(2):
        for name in model.state_names:
            np.testing.assert_allclose(res.log10_grad_norms(name, k), whole.log10_grad_norms(name, k), atol=1e-12, rtol=0)
        np.testing.assert_allclose(res.grad_norms("h", k), whole.grad("h", k).norm(dim=-1).numpy(), rtol=1e-12)
        np.testing.assert_allclose(res.explicit_grad_norms(k), whole.explicit_grad_norms(k), rtol=1e-12)
    np.testing.assert_allclose(res.explicit_log10_grad_norms(1), np.log10(g.norm(dim=-1).numpy()), atol=1e-12)
    S = segment or segment_length(T)
    assert calls == [(t0, min(t0 + S, T)) for t0 in reversed(range(0, T, S))]


def test_segment_length_is_about_the_square_root_and_at_least_the_minimum():
    assert [segment_length(T) for T in (1, 2, 100, 101, 10**4, 10**4 + 1, 10**6)] == [1, 2, 100, 100, 100, 101, 1000]
