"""``from_torch`` / ``to_torch``: copies between torch's fused modules and gradlab's models.

The two share parameter names and shapes, so the copy is a ``load_state_dict``; the only work is
choosing the class and checking that the module is one gradlab can express exactly.
"""

from __future__ import annotations

import warnings

from torch import nn

from gradlab.models.recurrent import GRU, LSTM, SRN, RecurrentModel

_TORCH_TO_GRADLAB = ((nn.LSTM, LSTM), (nn.GRU, GRU), (nn.RNN, SRN))
_CELL_TO_GRADLAB = ((nn.LSTMCell, LSTM), (nn.GRUCell, GRU), (nn.RNNCell, SRN))
_GRADLAB_TO_CELL = {SRN: nn.RNNCell, LSTM: nn.LSTMCell, GRU: nn.GRUCell}


def _factory(module: nn.Module) -> dict:
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def from_torch(module: nn.Module) -> RecurrentModel:
    """The gradlab model computing the same function as a torch ``nn.RNN``/``nn.LSTM``/``nn.GRU``.

    A cell (``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``) becomes a one-layer model whose step is
    the cell. Any number of layers, bias on or off, batch_first either way, any dtype and device; the
    parameters are copied (the two models do not share storage). Bidirectional modules and LSTMs
    with ``proj_size > 0`` have no gradlab equivalent and raise ``ValueError``. gradlab models
    have no dropout: for ``dropout > 0`` the copy equals the module in eval mode (a warning says so).
    """
    for cell_cls, gradlab_cls in _CELL_TO_GRADLAB:
        if isinstance(module, cell_cls):
            return _from_cell(module, gradlab_cls)
    for torch_cls, gradlab_cls in _TORCH_TO_GRADLAB:
        if isinstance(module, torch_cls):
            break
    else:
        raise TypeError("from_torch takes torch.nn.RNN, nn.LSTM, nn.GRU or their cells (nn.RNNCell, "
                        f"nn.LSTMCell, nn.GRUCell), got {type(module).__name__}")
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


def _from_cell(cell: nn.Module, gradlab_cls) -> RecurrentModel:
    kwargs = dict(bias=cell.bias, **_factory(cell))
    if gradlab_cls is SRN:
        kwargs["nonlinearity"] = cell.nonlinearity
    model = gradlab_cls(cell.input_size, cell.hidden_size, **kwargs)
    model.load_state_dict({f"{name}_l0": p for name, p in cell.state_dict().items()})
    model.train(cell.training)
    return model


def to_torch_cell(model: RecurrentModel) -> nn.Module:
    """The torch ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell`` computing one step of a one-layer model."""
    if model.num_layers != 1:
        raise ValueError(f"to_torch_cell: a cell is one layer; this model has {model.num_layers}")
    kwargs = dict(bias=model.bias, **_factory(model))
    if isinstance(model, SRN):
        if model.nonlinearity == "linear":
            raise ValueError("to_torch_cell: torch.nn.RNNCell has no linear nonlinearity (only 'tanh' and 'relu')")
        kwargs["nonlinearity"] = model.nonlinearity
    cell = _GRADLAB_TO_CELL[type(model)](model.input_size, model.hidden_size, **kwargs)
    cell.load_state_dict({name[: -len("_l0")]: p for name, p in model.state_dict().items()})
    cell.train(model.training)
    return cell
