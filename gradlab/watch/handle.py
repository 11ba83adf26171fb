"""The watch handle: which calls of which modules are recorded, and where their traces go.

A *step* is one backward pass that reaches a watched module: under gradient accumulation each
micro-batch counts. Steps are numbered from ``start_step``; the first and then every ``every``-th
is recorded. Forward passes without gradient (validation under ``no_grad``) are not steps and
record nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from gradlab.engine.record import OutputMismatch, trace_of_run
from gradlab.models.convert import sharing_parameters
from gradlab.models.recurrent import RecurrentModel, state_parts
from gradlab.watch.backward import BACKWARD_NOTES, BACKWARDS, swept_outputs
from gradlab.watch.cells import CELLS, CellRecorder, state_tensors
from gradlab.watch.precision import autocast_on, fused_dtype
from gradlab.watch.replay import REPLAY_TOLERANCE, Replay, draws_dropout
from gradlab.watch.rundir import RunDirectory
from gradlab.watch.steps import StepTraces

WATCHED = (nn.RNN, nn.LSTM, nn.GRU, RecurrentModel)
ENGINE = ("gradlab.watch: the fused forward as it ran; the gradients reaching its outputs; the layers recomputed "
          "with their tapes (compiled forward sweeps, or torch's fused kernels with the tapes rebuilt), checked "
          "against the output that ran, and hand-derived sweeps in the log domain (the total gradients, and the "
          "distance sweep seeded at each sample's last step)")
PENDING = object()  # a recorded call whose backward pass has not come through yet


def is_compiling() -> bool:
    """Whether this code is being traced by torch.compile (``torch.compiler.is_compiling``, torch >= 2.3)."""
    compiler = getattr(torch, "compiler", None)
    return bool(getattr(compiler, "is_compiling", lambda: False)())


def output_tensors_needing_grad(output) -> list[torch.Tensor]:
    """(output, h_n) or (output, (h_n, c_n)) → those tensors (a packed output's data) a backward pass can reach."""
    out, final = output
    first = out.data if isinstance(out, PackedSequence) else out
    return [t for t in (first, *state_parts(final)) if t.requires_grad]


def distributed_rank() -> int:
    """This process's rank in the default torch.distributed group, 0 without one."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def refuse_compiled(model: nn.Module) -> None:
    """A module compiled with torch.compile runs graphs the watch's hooks cannot see into: refuse it."""
    for name, m in model.named_modules():
        if type(m).__name__ == "OptimizedModule" or getattr(m, "_compiled_call_impl", None) is not None:
            where = f" ({name})" if name else ""
            raise ValueError(f"watch: the model{where} is compiled with torch.compile, whose graphs the watch cannot "
                             "see into; watch the eager model (compile it after the watch is removed)")


class Watch:
    """What ``gradlab.watch`` returns: ``traces`` (one :class:`StepTraces` per recorded step),
    ``step`` (the number of the step the next backward pass will be), ``remove()``."""

    def __init__(self, model: nn.Module, every: int = 1, full: bool = False, start_step: int = 0,
                 log_domain: bool = True, out=None, keep: Optional[int] = None,
                 cells: Optional[list[str]] = None, tensorboard=None, all_ranks: bool = False,
                 backward: str = "torch") -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"watch: every must be an integer >= 1, got {every!r}")
        if not isinstance(start_step, int) or isinstance(start_step, bool) or start_step < 0:
            raise ValueError(f"watch: start_step must be an integer >= 0, got {start_step!r}")
        if backward not in BACKWARDS:
            raise ValueError(f"watch: backward must be one of {', '.join(map(repr, BACKWARDS))}, got {backward!r}")
        self.every, self.full, self.start_step, self.log_domain = every, full, start_step, log_domain
        self.backward = backward
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
        refuse_compiled(model)
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 0):
            raise ValueError(f"watch: keep must be an integer >= 0 or None, got {keep!r}")
        if keep is not None and out is None and tensorboard is None:
            raise ValueError("watch: keep bounds the steps kept in memory when a sink (out= or tensorboard=) has "
                             "them all; give out= too")
        for what, value in (("out", out), ("tensorboard", tensorboard)):
            if isinstance(value, (str, Path)) and not str(value).strip():
                raise ValueError(f"watch: {what} must be a directory path, got an empty one")
        if not isinstance(all_ranks, bool):
            raise ValueError(f"watch: all_ranks must be True or False, got {all_ranks!r}")
        if tensorboard is not None and not log_domain:
            raise ValueError("watch: tensorboard= draws the decay from the log-domain distance sweep; "
                             "leave log_domain=True")
        self.keep = keep
        self.rank = distributed_rank()
        if self.rank and not all_ranks:  # under torch.distributed the sinks are rank 0's unless asked
            out = tensorboard = None
        self._copies = {name: self._copy_of(name, m) for name, m in self.modules.items()}
        self.run_dir = None if out is None else RunDirectory(out, list(self.modules) + list(self.cells), every,
                                                            start_step)
        self._unsettled: list[dict] = []  # recorded steps not yet finished (cells, or calls awaiting their backward)
        self.tensorboard = None
        if tensorboard is not None:  # imported here: the sink draws figures, and the watch alone needs no matplotlib
            from gradlab.watch.tensorboard import TensorBoardSink

            self.tensorboard = TensorBoardSink(tensorboard)
        self._open: Optional[dict] = None  # the step whose forward passes have run and whose backward has not
        self._replays: dict[str, Replay] = {}  # the generator state before a recorded fused forward with dropout
        self._handles = [m.register_forward_hook(self._hook(name), with_kwargs=True) for name, m in self.modules.items()]
        self._handles += [m.register_forward_pre_hook(self._before(name)) for name, m in self.modules.items()]
        for name, cell in self.cells.items():
            self._handles.append(cell.register_forward_pre_hook(self._cell_before(name), with_kwargs=True))
            self._handles.append(cell.register_forward_hook(self._cell_after(name)))

    @staticmethod
    def _copy_of(name: str, module: nn.Module) -> RecurrentModel:
        if isinstance(module, RecurrentModel):
            return module
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
            if not torch.is_grad_enabled():
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
            if not torch.is_grad_enabled():
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
        """Finish the recorded steps whose backward pass is over (a new step has opened, the traces
        are read, or the watch is removed): their cells' traces, and without the calls no gradient
        reached in that backward pass (a module whose output the loss did not read)."""
        for step in [s for s in self._unsettled if s is not self._open]:
            self._unsettled.remove(step)
            for name, recorder in step["cells"].items():
                step["traces"][name] = recorder.finish(self.full)
            for key in [k for k, v in step["traces"].items() if v is PENDING]:
                del step["traces"][key]
            if step["traces"]:
                self._finished(step["traces"])

    def _reached(self, opened: dict) -> None:
        """A backward pass has reached a module called in ``opened``: that step is taken."""
        if self._open is opened and self._handles:  # (a removed watch counts nothing)
            self._open = None
            self.step += 1

    def _before(self, name: str):
        def hook(module, args):
            if torch.is_grad_enabled() and draws_dropout(module) and self._current()["record"]:
                self._replays[name] = Replay(name, module, next(module.parameters()).device)
            return None
        return hook

    def _hook(self, name: str):
        def hook(module, args, kwargs, output):
            if not torch.is_grad_enabled():
                return None  # validation is not a step
            if is_compiling():
                raise RuntimeError(f"watch: {name} runs inside torch.compile, whose graphs the watch cannot see "
                                   "into; watch the eager model")
            step = self._current()
            call = step["calls"].get(name, 0)
            step["calls"][name] = call + 1
            key = name if call == 0 else f"{name}#{call}"
            if not step["record"]:
                reached = output_tensors_needing_grad(output)
                if reached:  # whichever output the loss reads (the sequence, h_n or c_n), this step is taken
                    torch.autograd.graph.register_multi_grad_hook(reached, lambda grads, step=step: self._reached(step))
                return None
            return self._record(step, name, key, module, args, kwargs, output)
        return hook

    def _record(self, step: dict, name: str, key: str, module: nn.Module, args, kwargs, fused):
        """Leave the fused forward as it ran; once the backward pass has brought the gradients to its
        outputs, build this call's Trace from them (``gradlab.engine.record.trace_of_run``). With
        ``backward="gradlab"`` (and no autocast) return the outputs through ``SweptBackward``, whose
        backward is that same sweep with the parameter gradients (``gradlab/watch/backward.py``)."""
        x = args[0] if args else kwargs["input"]
        state = args[1] if len(args) > 1 else kwargs.get("hx")
        copy = self._copies[name]
        copy.train(module.training)
        copy.dropout = getattr(module, "dropout", 0.0)
        out, final = fused
        out_data = out.data if isinstance(out, PackedSequence) else out
        finals = state_parts(final)
        reached = output_tensors_needing_grad(fused)
        if not reached:
            return None  # no backward pass can reach this call
        replay = self._replays.pop(name, None)
        layout = copy.layout_of(x)
        masks = None
        if replay is not None:
            T, B = layout.time_major(x).shape[:2]
            masks = replay.masks(copy.num_layers, copy.dropout, layout,
                                 out_data.new_empty(T, B, copy.num_directions * copy.output_size))
        low_precision = autocast_on(next(module.parameters()).device.type)
        swept = self.backward == "gradlab" and not low_precision
        dtype = next(copy.parameters()).dtype
        # under autocast the recomputation runs in float32 and cannot match the low-precision output
        expected = None if low_precision else out.detach() if not isinstance(out, PackedSequence) else \
            out._replace(data=out.data.detach())
        step["traces"][key] = PENDING  # replaced by its Trace when the backward pass is through
        if step not in self._unsettled:
            self._unsettled.append(step)
        which = [out_data.requires_grad] + [f.requires_grad for f in finals]

        def trace_from(grads, with_params: bool = False):
            """The Trace of this call from the gradients reaching its outputs (None where not read)."""
            try:
                trace = trace_of_run(copy, x, state, grads[0], tuple(grads[1:]), masks, full=self.full,
                                     log_domain=self.log_domain, distance=True, expected=expected,
                                     tolerance=REPLAY_TOLERANCE.get(dtype, 1e-2), with_params=with_params)
            except OutputMismatch as exc:
                raise RuntimeError(f"watch: {key}: {exc}" + ("; its dropout masks were not the ones torch drew — "
                                                            "call model.eval() for the watched step or set dropout=0"
                                                            if masks is not None else "")) from None
            trace.meta["engine"] = ENGINE
            trace.meta["backward"] = BACKWARD_NOTES["gradlab" if swept else "torch"]
            if replay is not None:
                trace.meta["dropout"] = (f"p={copy.dropout} between layers: torch's masks replayed from the CPU "
                                         "generator state saved before the fused forward, outputs checked")
            if low_precision:
                trace.meta["autocast"] = (f"the fused forward ran under autocast ({fused_dtype(fused)}); recorded in "
                                          f"{trace.meta['dtype']}" + ("; torch's backward kept" if self.backward ==
                                                                      "gradlab" else ""))
            return trace

        def keep(trace) -> None:
            if step not in self._unsettled:
                return  # settled without this call already (a second backward through a retained graph)
            step["traces"][key] = trace
            if not step["cells"] and not any(v is PENDING for v in step["traces"].values()):
                self._unsettled.remove(step)  # every call of this step is through: write it now
                self._finished(step["traces"])

        if not swept:
            def done(grads) -> None:
                if not self._handles:
                    return  # the watch was removed before this backward pass: it records nothing more
                self._reached(step)
                it = iter(grads)
                keep(trace_from([next(it) if needed else None for needed in which]))

            torch.autograd.graph.register_multi_grad_hook(reached, done)
            return None

        parameters = dict(copy.named_parameters())  # the module's own (``sharing_parameters``)
        state_in = list(state_parts(state)) if state is not None else []
        inputs = [x.data if isinstance(x, PackedSequence) else x, *state_in, *parameters.values()]

        def gradients(grads, needed):
            """∂L/∂(x, initial state, parameters) from one sweep; the trace is kept as the watch's."""
            self._reached(step)  # (nothing once the watch is removed)
            trace = trace_from(grads, with_params=True)
            input_grad = trace.input_grad.data if isinstance(x, PackedSequence) else trace.input_grad
            initial = [trace.initial_grads[n] for n in copy.state_names[:len(state_in)]]
            result = [input_grad, *initial, *(trace.param_grads[n] for n in parameters)]
            if self._handles:  # (a watch removed before this backward pass records nothing more)
                keep(replace(trace, param_grads=None, input_grad=None))
            return tuple(g.to(like.dtype) if need else None for g, need, like in zip(result, needed, inputs))

        return swept_outputs(fused, inputs, gradients)

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
          out=None, keep: Optional[int] = None, cells: Optional[list[str]] = None, tensorboard=None,
          all_ranks: bool = False, backward: str = "torch") -> Watch:
    """Record ∂L/∂h_t (and ∂L/∂c_t) of every recurrent module inside ``model`` on the first backward
    pass and every ``every``-th after it, in the user's own training loop.

    full: keep the gradient tensors, not only the norms. log_domain: run the sweeps in the log
    domain (exact log10 norms, and the distance sweep); False: one plain sweep. out: a directory in which the watch creates a
    fresh run directory (``w.run_dir.path``) and writes every recorded step as it finishes
    (:func:`gradlab.load_watch` reads it back); keep: then keep only the last ``keep`` steps in
    memory. cells: names (as in ``named_modules()``) of further modules stepped by hand in the loop
    whose forward returns the next state; torch's nn.RNNCell/LSTMCell/GRUCell are found by type.
    Each call of a cell is a time step (see ``gradlab/watch/cells.py``). tensorboard: a log
    directory or a ``SummaryWriter``; each recorded step's decay factors, horizons and figures go
    there (``gradlab/watch/tensorboard.py``). Under ``torch.distributed`` (e.g. DistributedDataParallel)
    every rank records its own batch and only rank 0 writes to the sinks, unless ``all_ranks``
    (then each rank writes its own run directory). backward: who runs the watched modules' backward
    pass on a recorded step — ``"torch"`` (its fused backward, as unwatched; the recorded sweep runs
    beside it) or ``"gradlab"`` (the recorded sweep, which also forms the parameter and input gradients,
    in place of torch's: a recorded step costs about a forward recomputation and the distance sweep
    more than an unwatched one; gradients equal torch's to the dtype's accuracy, not bit for bit; see
    ``gradlab/watch/backward.py``). Returns a :class:`Watch`;
    use it as a context manager, or call ``remove()``.
    ``w.traces[i][name]`` is a :class:`~gradlab.Trace`.
    """
    return Watch(model, every=every, full=full, start_step=start_step, log_domain=log_domain, out=out, keep=keep,
                 cells=cells, tensorboard=tensorboard, all_ranks=all_ranks, backward=backward)



