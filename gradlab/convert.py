"""``from_torch`` / ``to_torch``: copies between torch's fused modules and gradlab's models.

The two share parameter names and shapes, so the copy is a ``load_state_dict``; the only work is
choosing the class and checking that the module is one gradlab can express exactly.
"""

from __future__ import annotations

import warnings

from torch import nn

from gradlab.models import GRU, LSTM, SRN, RecurrentModel

_TORCH_TO_GRADLAB = ((nn.LSTM, LSTM), (nn.GRU, GRU), (nn.RNN, SRN))


def _factory(module: nn.Module) -> dict:
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def from_torch(module: nn.Module) -> RecurrentModel:
    """The gradlab model computing the same function as a torch ``nn.RNN``/``nn.LSTM``/``nn.GRU``.

    Any number of layers, bias on or off, batch_first either way, any dtype and device; the
    parameters are copied (the two models do not share storage). Bidirectional modules and LSTMs
    with ``proj_size > 0`` have no gradlab equivalent and raise ``ValueError``. gradlab models
    have no dropout: for ``dropout > 0`` the copy equals the module in eval mode (a warning says so).
    """
    for torch_cls, gradlab_cls in _TORCH_TO_GRADLAB:
        if isinstance(module, torch_cls):
            break
    else:
        raise TypeError(f"from_torch takes torch.nn.RNN, nn.LSTM or nn.GRU, got {type(module).__name__}")
    if module.bidirectional:
        raise ValueError("from_torch: bidirectional modules are not supported (gradlab models run forward in time)")
    if getattr(module, "proj_size", 0):
        raise ValueError("from_torch: LSTMs with proj_size > 0 are not supported")
    if module.dropout:
        warnings.warn(f"from_torch: the module has dropout={module.dropout}; the gradlab model has none and "
                      "equals the module in eval mode", stacklevel=2)
    kwargs = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                  **_factory(module))
    if gradlab_cls is SRN:
        kwargs["nonlinearity"] = module.nonlinearity
    model = gradlab_cls(module.input_size, module.hidden_size, **kwargs)
    model.load_state_dict(module.state_dict())
    model.train(module.training)
    return model


def to_torch(model: RecurrentModel) -> nn.Module:
    """The torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` computing the same function as ``model``."""
    kwargs = dict(num_layers=model.num_layers, bias=model.bias, batch_first=model.batch_first,
                  **_factory(model))
    if isinstance(model, SRN):
        if model.nonlinearity == "linear":
            raise ValueError("to_torch: torch.nn.RNN has no linear nonlinearity (only 'tanh' and 'relu')")
        module = nn.RNN(model.input_size, model.hidden_size, nonlinearity=model.nonlinearity, **kwargs)
    elif isinstance(model, LSTM):
        module = nn.LSTM(model.input_size, model.hidden_size, **kwargs)
    elif isinstance(model, GRU):
        module = nn.GRU(model.input_size, model.hidden_size, **kwargs)
    else:
        raise TypeError(f"to_torch takes a gradlab SRN, LSTM or GRU, got {type(model).__name__}")
    module.load_state_dict(model.state_dict())
    module.train(model.training)
    return module
