"""The watch handle: which calls of which modules are recorded, and where their traces go.

A *step* is one backward pass that reaches a watched module: under gradient accumulation each
micro-batch counts. Steps are numbered from ``start_step``; the first and then every ``every``-th
is recorded. Forward passes without gradient (validation under ``no_grad``) are not steps and
record nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.record import Recorder
from gradlab.models.convert import sharing_parameters
from gradlab.models.recurrent import RecurrentModel
from gradlab.watch.cells import CELLS, CellRecorder, state_tensors
from gradlab.watch.rundir import RunDirectory
from gradlab.watch.tensorboard import TensorBoardSink
from gradlab.watch.steps import StepTraces

WATCHED = (nn.RNN, nn.LSTM, nn.GRU, RecurrentModel)
ENGINE = ("gradlab.watch: autograd with tensor hooks on gradlab's unrolled copy of the module, sharing its "
          "parameters")


class Watch:
    """What ``gradlab.watch`` returns: ``traces`` (one :class:`StepTraces` per recorded step),
    ``step`` (the number of the step the next backward pass will be), ``remove()``."""

    def __init__(self, model: nn.Module, every: int = 1, full: bool = False, start_step: int = 0,
                 log_domain: bool = True, out=None, keep: Optional[int] = None,
                 cells: Optional[list[str]] = None, tensorboard=None) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"watch: every must be an integer >= 1, got {every!r}")
        if not isinstance(start_step, int) or isinstance(start_step, bool) or start_step < 0:
            raise ValueError(f"watch: start_step must be an integer >= 0, got {start_step!r}")
        self.every, self.full, self.start_step, self.log_domain = every, full, start_step, log_domain
        self.step = start_step
        self._traces: list[StepTraces] = []
        self.modules = {name: m for name, m in model.named_modules() if isinstance(m, WATCHED)}
        self.cells = {name: m for name, m in model.named_modules() if isinstance(m, CELLS)}
        for name in cells or ():
            try:
                self.cells[name] = model.get_submodule(name)
            except AttributeError:
                raise ValueError(f"watch: cells names {name!r}, which {type(model).__name__} does not have") from None
        if not self.modules and not self.cells:
            raise ValueError(f"watch: {type(model).__name__} holds no torch.nn.RNN, LSTM, GRU, cell or gradlab model")
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 0):
            raise ValueError(f"watch: keep must be an integer >= 0 or None, got {keep!r}")
        if keep is not None and out is None and tensorboard is None:
            raise ValueError("watch: keep bounds the steps kept in memory when a sink (out= or tensorboard=) has "
                             "them all; give out= too")
        for what, value in (("out", out), ("tensorboard", tensorboard)):
            if isinstance(value, (str, Path)) and not str(value).strip():
                raise ValueError(f"watch: {what} must be a directory path, got an empty one")
        if tensorboard is not None and not log_domain:
            raise ValueError("watch: tensorboard= draws the decay from the log-domain distance sweep; "
                             "leave log_domain=True")
        self.keep = keep
        self._copies = {name: self._copy_of(name, m) for name, m in self.modules.items()}
        self.run_dir = None if out is None else RunDirectory(out, list(self.modules) + list(self.cells), every,
                                                            start_step)
        self._unsettled: list[dict] = []  # recorded steps with cells, finished once the step is over
        self.tensorboard = None if tensorboard is None else TensorBoardSink(tensorboard)
        self._open: Optional[dict] = None  # the step whose forward passes have run and whose backward has not
        self._recording = False  # inside a recorded forward (a gradlab module's own hook must not recurse)
        self._handles = [m.register_forward_hook(self._hook(name), with_kwargs=True) for name, m in self.modules.items()]
        for name, cell in self.cells.items():
            self._handles.append(cell.register_forward_pre_hook(self._cell_before(name), with_kwargs=True))
            self._handles.append(cell.register_forward_hook(self._cell_after(name)))

    @staticmethod
    def _copy_of(name: str, module: nn.Module) -> RecurrentModel:
        if isinstance(module, RecurrentModel):
            return module
        if getattr(module, "proj_size", 0):
            raise ValueError(f"watch: {name} is an LSTM with proj_size={module.proj_size}, which gradlab cannot "
                             "record yet")
        return sharing_parameters(module)

    # -- steps ----------------------------------------------------------------------------------

    @property
    def traces(self) -> list[StepTraces]:
        """One StepTraces per recorded step whose backward pass is through, oldest first."""
        self._settle()
        return self._traces

    def _current(self) -> dict:
        """The open step, opened by the first forward pass with gradient since the last backward."""
        if self._open is None:
            self._settle()
            record = (self.step - self.start_step) % self.every == 0
            self._open = {"step": self.step, "record": record, "calls": {}, "cells": {},
                          "traces": StepTraces(self.step) if record else None}
        return self._open

    def _cell_before(self, name: str):
        def hook(cell, args, kwargs):
            if not torch.is_grad_enabled() or self._recording:
                return None
            step = self._current()
            if step["record"]:
                recorder = step["cells"].setdefault(name, CellRecorder(name))
                if step not in self._unsettled:
                    self._unsettled.append(step)
                return recorder.before(args, kwargs)
            return None
        return hook

    def _cell_after(self, name: str):
        def hook(cell, args, output):
            if not torch.is_grad_enabled() or self._recording:
                return None
            step = self._current()
            if step["record"]:
                step["cells"][name].after(output)
            for part in state_tensors(output):
                if part.requires_grad:  # a backward pass reaching the cell takes the step
                    part.register_hook(lambda g, step=step: self._reached(step) or None)
            return None
        return hook

    def _settle(self) -> None:
        """Finish the recorded steps with cells whose backward pass is over (a new step has opened,
        the traces are read, or the watch is removed)."""
        for step in [s for s in self._unsettled if s is not self._open]:
            self._unsettled.remove(step)
            for name, recorder in step["cells"].items():
                step["traces"][name] = recorder.finish(self.full)
            if not any(isinstance(v, Recorder) for v in step["traces"].values()):
                self._finished(step["traces"])

    def _reached(self, opened: dict) -> None:
        """A backward pass has reached a module called in ``opened``: that step is taken."""
        if self._open is opened:
            self._open = None
            self.step += 1

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            if not torch.is_grad_enabled() or self._recording:
                return None  # validation is not a step; a recorded forward is already one
            step = self._current()
            call = step["calls"].get(name, 0)
            step["calls"][name] = call + 1
            key = name if call == 0 else f"{name}#{call}"
            if not step["record"]:
                first = output[0].data if isinstance(output[0], PackedSequence) else output[0]
                if first.requires_grad:
                    first.register_hook(lambda g, step=step: self._reached(step) or None)
                return None
            return self._record(step, name, key, module, args, kwargs)
        return hook

    def _record(self, step: dict, name: str, key: str, module: nn.Module, args, kwargs):
        x = args[0] if args else kwargs["input"]
        state = args[1] if len(args) > 1 else kwargs.get("hx")
        if module.training and getattr(module, "dropout", 0) and module.num_layers > 1:
            raise RuntimeError(f"watch: {key} has dropout={module.dropout} between layers in training mode, which "
                               "gradlab cannot replay yet; call model.eval() for the watched step or set dropout=0")
        copy = self._copies[name]

        def done() -> None:
            self._reached(step)
            step["traces"][key] = recorder.finish(log_domain=self.log_domain, engine=ENGINE, distance=True)
            if step not in self._unsettled and not any(isinstance(v, Recorder) for v in step["traces"].values()):
                self._finished(step["traces"])

        recorder = Recorder(copy, x, state, full=self.full, on_done=done)
        step["traces"][key] = recorder  # replaced by its Trace when the backward pass is through
        self._recording = True
        try:
            return recorder.forward()
        finally:
            self._recording = False

    def _finished(self, traces: StepTraces) -> None:
        """Every module of a recorded step is through: keep it, and write it out."""
        if self.run_dir is not None:
            self.run_dir.write(traces.step, traces)
        if self.tensorboard is not None:
            self.tensorboard.write(traces)
        self._traces.append(traces)
        if self.keep is not None:
            del self._traces[:max(0, len(self._traces) - self.keep)]

    # -- the handle -----------------------------------------------------------------------------

    def remove(self) -> None:
        """Remove every hook the watch placed on the model's modules (also safe to call twice)."""
        if self._open is not None and self._open in self._unsettled:
            self._open = None  # the watch ends: its last step is over
        self._settle()
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.tensorboard is not None:
            self.tensorboard.close()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return (f"Watch({', '.join([*self.modules, *self.cells])}; every {self.every} step(s) from "
                f"{self.start_step}; {len(self._traces)} recorded, next step {self.step})")


def watch(model: nn.Module, every: int = 1, full: bool = False, start_step: int = 0, log_domain: bool = True,
          out=None, keep: Optional[int] = None, cells: Optional[list[str]] = None, tensorboard=None) -> Watch:
    """Record ∂L/∂h_t (and ∂L/∂c_t) of every recurrent module inside ``model`` on the first backward
    pass and every ``every``-th after it, in the user's own training loop.

    full: keep the gradient tensors, not only the norms. log_domain: add exact log10 norms (a
    second, hand-derived sweep per recorded module). out: a directory in which the watch creates a
    fresh run directory (``w.run_dir.path``) and writes every recorded step as it finishes
    (:func:`gradlab.load_watch` reads it back); keep: then keep only the last ``keep`` steps in
    memory. cells: names (as in ``named_modules()``) of further modules stepped by hand in the loop
    whose forward returns the next state; torch's nn.RNNCell/LSTMCell/GRUCell are found by type.
    Each call of a cell is a time step (see ``gradlab/watch/cells.py``). tensorboard: a log
    directory or a ``SummaryWriter``; each recorded step's decay factors, horizons and figures go
    there (``gradlab/watch/tensorboard.py``). Returns a :class:`Watch`;
    use it as a context manager, or call ``remove()``.
    ``w.traces[i][name]`` is a :class:`~gradlab.Trace`.
    """
    return Watch(model, every=every, full=full, start_step=start_step, log_domain=log_domain, out=out, keep=keep,
                 cells=cells, tensorboard=tensorboard)



