"""``from_torch`` / ``to_torch`` / ``to_torch_cell``: copies between torch's fused modules and
gradlab's models.

The two share parameter names and shapes, so the copy is a ``load_state_dict``; the only work is
choosing the class (each model class names its torch counterparts) and checking that the module is
one gradlab can express exactly.
"""

from __future__ import annotations

from torch import nn

from gradlab.models.recurrent import MODEL_CLASSES, SRN, RecurrentModel


def _factory(module: nn.Module) -> dict:
    p = next(module.parameters())
    return {"device": p.device, "dtype": p.dtype}


def _copy_parameters(target: nn.Module, source: nn.Module, rename=lambda name: name) -> None:
    """Load ``source``'s parameters into ``target`` (named alike after ``rename``), frozen ones frozen."""
    target.load_state_dict({rename(n): p for n, p in source.state_dict().items()})
    frozen = {rename(n) for n, p in source.named_parameters() if not p.requires_grad}
    for name, p in target.named_parameters():
        p.requires_grad_(name not in frozen)
    target.train(source.training)


def _built_empty(cls: type[nn.Module], like: nn.Module, *args, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)`` with ``like``'s dtype, on its device, parameters uninitialised:
    built on the meta device, so that a copy draws no random numbers (its parameters are loaded next)."""
    factory = _factory(like)
    return cls(*args, **kwargs, device="meta", dtype=factory["dtype"]).to_empty(device=factory["device"])


def _torch_kwargs(model: RecurrentModel, what: str) -> dict:
    kwargs = dict(model.architecture.options())
    if model.proj_size:
        kwargs["proj_size"] = model.proj_size
    if kwargs.get("nonlinearity") == "linear":
        raise ValueError(f"{what}: torch has no linear nonlinearity (only 'tanh' and 'relu')")
    return kwargs


def from_torch(module: nn.Module) -> RecurrentModel:
    """The gradlab model computing the same function as a torch ``nn.RNN``/``nn.LSTM``/``nn.GRU``.

    A cell (``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``) becomes a one-layer model whose step is
    the cell. Any number of layers, bias on or off, batch_first either way, any dtype and device; the
    parameters are copied (the two models do not share storage; no random numbers are drawn). Bidirectional modules are copied
    with both directions, ``dropout`` between layers and an LSTM's ``proj_size`` as they are.
    """
    for cls in MODEL_CLASSES.values():
        if isinstance(module, cls.torch_cell):
            return _from_cell(module, cls)
    for cls in MODEL_CLASSES.values():
        if isinstance(module, cls.torch_module):
            break
    else:
        raise TypeError("from_torch takes torch.nn.RNN, nn.LSTM, nn.GRU or their cells (nn.RNNCell, "
                        f"nn.LSTMCell, nn.GRUCell), got {type(module).__name__}")
    options = {"nonlinearity": module.nonlinearity} if cls is SRN else {}
    if getattr(module, "proj_size", 0):
        options["proj_size"] = module.proj_size
    model = _built_empty(cls, module, module.input_size, module.hidden_size, num_layers=module.num_layers,
                         bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
                         bidirectional=module.bidirectional, **options)
    _copy_parameters(model, module)
    return model


def sharing_parameters(module: nn.Module) -> RecurrentModel:
    """The gradlab model of a torch nn.RNN/LSTM/GRU whose parameters *are* the module's (no copy):
    gradients computed through it accumulate in the module's own ``.grad``."""
    model = from_torch(module)
    for name, p in module.named_parameters():
        model.register_parameter(name, p)
    return model


def to_torch(model: RecurrentModel) -> nn.Module:
    """The torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` computing the same function as ``model``."""
    if not isinstance(model, RecurrentModel):
        raise TypeError(f"to_torch takes a gradlab SRN, LSTM or GRU, got {type(model).__name__}")
    module = _built_empty(type(model).torch_module, model, model.input_size, model.hidden_size,
                          num_layers=model.num_layers, bias=model.bias, batch_first=model.batch_first,
                          dropout=model.dropout, bidirectional=model.bidirectional, **_torch_kwargs(model, "to_torch"))
    _copy_parameters(module, model)
    return module


def _from_cell(cell: nn.Module, cls: type[RecurrentModel]) -> RecurrentModel:
    options = {"nonlinearity": cell.nonlinearity} if cls is SRN else {}
    model = _built_empty(cls, cell, cell.input_size, cell.hidden_size, bias=cell.bias, **options)
    _copy_parameters(model, cell, lambda name: f"{name}_l0")
    return model


def to_torch_cell(model: RecurrentModel) -> nn.Module:
    """The torch ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell`` computing one step of a one-layer model."""
    if model.num_layers != 1 or model.bidirectional:
        raise ValueError(f"to_torch_cell: a cell is one layer in one direction; this model has {model.num_layers} "
                         f"layer(s) in {model.num_directions} direction(s)")
    if model.proj_size:
        raise ValueError("to_torch_cell: torch's nn.LSTMCell has no projection (proj_size)")
    cell = _built_empty(type(model).torch_cell, model, model.input_size, model.hidden_size, bias=model.bias,
                        **_torch_kwargs(model, "to_torch_cell"))
    _copy_parameters(cell, model, lambda name: name[: -len("_l0")])
    return cell
