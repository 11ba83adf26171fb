"""Helpers the tests share: tiny models and inputs, the CUDA skip mark."""

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
