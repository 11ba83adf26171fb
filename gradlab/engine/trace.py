"""Trace: the one record of per-step gradients, returned by record, bptt and checkpointed_norms.

For every layer, direction and step it holds the per-sample norm of the **total** derivative
∂L/∂h_t (and ∂L/∂c_t for the LSTM) — every path from the state to the loss, through all later
steps, what ``torch.autograd.grad(loss, h_t)`` returns — and of the **explicit** part ∂⁺L/∂h_t:
every gradient reaching h_t other than through its own layer and direction's next step (the loss
through output[t] for the top layer, the layer above for a lower one, and ∂L/∂h_n at the
direction's last step).

Conventions (the same in every field):

- time-major: per-step arrays are ``[T, B]`` (norms) or ``[T, B, H]`` (tensors), t in forward order;
- *numbers about gradients* are NumPy float64 arrays on the CPU (norms, log10 norms, the mask), for
  metrics and plots; *gradients themselves* are torch tensors in the run's dtype and device, shaped
  like what they are the gradient of: ``param_grads`` like the parameters, ``input_grad`` like the
  input x (its layout, as ``x.grad`` would be), ``initial_grads`` like h_0 / c_0 ([L·D, B, H]);
- ``layer`` counts from the bottom (negative from the top), ``direction`` is 0 (forward in time;
  1 for the reverse direction of a bidirectional layer, once the engine records one).

On disk (:meth:`Trace.save`, :meth:`Trace.load`) a trace is a NumPy ``.npz`` archive: one array per
field, named as in :meth:`Trace.to_arrays`, plus ``header`` (JSON: format "gradlab-trace",
version, kind, hidden size, meta and the torch dtype of each tensor). Loading gives back every
array bit for bit (tensors on the CPU).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from gradlab.common.files import atomic_write

FORMAT, VERSION = "gradlab-trace", 1
_STORED_AS = {torch.bfloat16: torch.int16}  # dtypes NumPy lacks travel as their bits


@dataclass(eq=False, repr=False)
class Trace:
    """Per-layer, per-direction, per-step gradients of one forward and backward pass.

    kind:                 the architecture ("srn", "lstm", "gru")
    hidden_size:          H
    norms[name]:          [L, D, T, B] float64, ‖∂L/∂name_t‖ per sample as the run's dtype holds it
                          (0.0 where it underflows, inf where it overflows); name "h", or "c" (LSTM)
    explicit_norms:       [L, D, T, B] float64, ‖∂⁺L/∂h_t‖ per sample
    log10_norms[name]:    [L, D, T, B] float64, log10 ‖∂L/∂name_t‖ from the log-domain engine: exact
                          where the plain norm is 0.0 or inf; −inf only for exact zeros (or None)
    explicit_log10_norms: [L, D, T, B] float64, log10 ‖∂⁺L/∂h_t‖ (or None)
    mask:                 [T, B] bool, True where a state exists (all True for unpadded input)
    distance_log10_norms[name]: [L, D, T, B] float64, log10 ‖∂L_last/∂name_t‖ of a second sweep seeded
                          only with the explicit gradient at each sample's last step (its own last
                          position forward, position 0 reverse) and ∂L/∂h_n: the decay with distance
                          from that step, when the loss reads every step (``gradlab.watch``; or None)
    grads[name]:          [L, D, T, B, H] the total gradients themselves, when kept (for h of a
                          projected LSTM the last dimension is its proj_size P)
    explicit_grads:       [L, D, T, B, H] the explicit gradients (of h: P wide when projected), when kept
    loss:                 the loss's value, when the engine saw it
    param_grads:          parameter name → ∂L/∂parameter (bptt)
    input_grad:           ∂L/∂x, shaped like x (bptt)
    initial_grads[name]:  ∂L/∂name_0, shaped like the initial state (record, bptt)
    forward_overflow_step: the first step whose state is not finite; then no gradient is defined
    meta:                 how it was made: {"engine", "dtype", "device", ...}
    """

    kind: str
    hidden_size: int
    norms: dict[str, np.ndarray]
    explicit_norms: np.ndarray
    log10_norms: Optional[dict[str, np.ndarray]] = None
    explicit_log10_norms: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    distance_log10_norms: Optional[dict[str, np.ndarray]] = None
    grads: Optional[dict[str, torch.Tensor]] = None
    explicit_grads: Optional[torch.Tensor] = None
    loss: Optional[float] = None
    param_grads: Optional[dict[str, torch.Tensor]] = None
    input_grad: Optional[torch.Tensor] = None
    initial_grads: Optional[dict[str, torch.Tensor]] = None
    forward_overflow_step: Optional[int] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask is None:
            self.mask = np.ones(self.explicit_norms.shape[2:], dtype=bool)

    # -- shape ---------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """The recorded state names: ("h",) or ("h", "c")."""
        return tuple(self.norms)

    @property
    def smallest_normal(self) -> float:
        """The run dtype's smallest normal number (float32: 1.2e-38): plain norms below it are
        subnormal, their precision partly lost."""
        return float(torch.finfo(getattr(torch, self.meta.get("dtype", "float32"))).tiny)

    @property
    def num_layers(self) -> int:
        return self.explicit_norms.shape[0]

    @property
    def num_directions(self) -> int:
        return self.explicit_norms.shape[1]

    @property
    def num_steps(self) -> int:
        return self.explicit_norms.shape[2]

    @property
    def batch_size(self) -> int:
        return self.explicit_norms.shape[3]

    @property
    def has_tensors(self) -> bool:
        return self.grads is not None

    def __repr__(self) -> str:
        kept = ["norms"] + (["log10 norms"] if self.log10_norms is not None else []) + \
            (["tensors"] if self.has_tensors else []) + (["parameter grads"] if self.param_grads is not None else [])
        loss = "" if self.loss is None else f", loss={self.loss:.4g}"
        trouble = "" if self.forward_overflow_step is None else f", forward overflow at step {self.forward_overflow_step}"
        return (f"Trace({self.kind}, layers={self.num_layers}, directions={self.num_directions}, T={self.num_steps}, "
                f"B={self.batch_size}, H={self.hidden_size}, states={','.join(self.names)}, "
                f"kept={'+'.join(kept)}{loss}{trouble})")

    def _index(self, name: str, layer: int, direction: int) -> tuple[int, int]:
        if name not in self.norms:
            raise KeyError(f"a {self.kind} has no {name!r} state; this trace records {', '.join(self.names)}")
        if not -self.num_layers <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range for {self.num_layers} layer(s)")
        if not 0 <= direction < self.num_directions:
            raise IndexError(f"direction {direction} out of range: this trace has {self.num_directions} direction(s)")
        return layer % self.num_layers, direction

    # -- accessors -----------------------------------------------------------------------------

    def _masked(self, values: np.ndarray) -> np.ndarray:
        """[T, B] values as they are, or a numpy.ma array masked where no state exists (padding)."""
        return values if self.mask.all() else np.ma.MaskedArray(values, mask=~self.mask)

    def _select(self, values, name: str, layer: int, direction: int, missing: str) -> np.ndarray:
        """One [T, B] slice of an [L, D, T, B] field (or of a field per state name), masked."""
        k, d = self._index(name, layer, direction)
        if values is None:
            raise ValueError(missing)
        return self._masked((values[name] if isinstance(values, dict) else values)[k, d])

    def grad_norms(self, name: str = "h", layer: int = -1, direction: int = 0) -> np.ndarray:
        """[T, B] float64: per-sample L2 norm over hidden units of the total ∂L/∂name_t (a numpy.ma
        array masked at padded positions when the batch has them; the same for every norm accessor)."""
        return self._select(self.norms, name, layer, direction, "")

    def log10_grad_norms(self, name: str = "h", layer: int = -1, direction: int = 0) -> np.ndarray:
        """[T, B] float64: log10 of the per-sample norm of the total ∂L/∂name_t, finite wherever the
        true gradient is non-zero (also where ``grad_norms`` has underflowed to 0.0 or overflowed)."""
        return self._select(self.log10_norms, name, layer, direction,
                            "this trace has no log-domain norms (record(..., log_domain=True) provides them)")

    def explicit_grad_norms(self, layer: int = -1, direction: int = 0) -> np.ndarray:
        """[T, B] float64: per-sample L2 norm of the explicit part ∂⁺L/∂h_t."""
        return self._select(self.explicit_norms, "h", layer, direction, "")

    def distance_log10_grad_norms(self, name: str = "h", layer: int = -1, direction: int = 0) -> np.ndarray:
        """[T, B] float64: log10 ‖∂L_last/∂name_t‖, the sweep seeded only at each sample's last step."""
        return self._select(self.distance_log10_norms, name, layer, direction,
                            "this trace has no distance sweep (gradlab.watch records one)")

    def explicit_log10_grad_norms(self, layer: int = -1, direction: int = 0) -> np.ndarray:
        """[T, B] float64: log10 ‖∂⁺L/∂h_t‖, exact past under- and overflow."""
        return self._select(self.explicit_log10_norms, "h", layer, direction,
                            "this trace has no log-domain norms of the explicit part")

    def grad(self, name: str = "h", layer: int = -1, direction: int = 0) -> torch.Tensor:
        """[T, B, H]: the total ∂L/∂name_t (time-major), when the trace kept tensors; 0 at padded
        positions, where no state exists (``mask`` is False there)."""
        k, d = self._index(name, layer, direction)
        if self.grads is None:
            raise ValueError("this trace kept only norms; record with full=True to keep the tensors")
        return self.grads[name][k, d]

    def explicit_grad(self, layer: int = -1, direction: int = 0) -> torch.Tensor:
        """[T, B, H]: the explicit ∂⁺L/∂h_t (time-major), when the trace kept tensors."""
        k, d = self._index("h", layer, direction)
        if self.explicit_grads is None:
            raise ValueError("this trace kept only norms; record with full=True to keep the tensors")
        return self.explicit_grads[k, d]

    def initial_grad(self, name: str = "h") -> torch.Tensor:
        """∂L/∂name_0, shaped like the initial state the model takes."""
        self._index(name, 0, 0)
        if self.initial_grads is None:
            raise ValueError("this trace has no initial-state gradients")
        return self.initial_grads[name]

    # -- on disk -------------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as a NumPy array by name ("norms/h", "grads/c", "param_grads/weight_hh_l0", …)
        plus "header": the archive :meth:`save` writes."""
        arrays: dict[str, np.ndarray] = {"explicit_norms": self.explicit_norms, "mask": self.mask}
        tensor_dtypes: dict[str, str] = {}

        def put_tensor(key: str, t: torch.Tensor) -> None:
            t = t.detach().cpu()
            tensor_dtypes[key] = str(t.dtype).replace("torch.", "")
            arrays[key] = t.view(_STORED_AS[t.dtype]).numpy() if t.dtype in _STORED_AS else t.numpy()

        for group in ("norms", "log10_norms", "distance_log10_norms"):
            for name, value in (getattr(self, group) or {}).items():
                arrays[f"{group}/{name}"] = value
        if self.explicit_log10_norms is not None:
            arrays["explicit_log10_norms"] = self.explicit_log10_norms
        for group in ("grads", "param_grads", "initial_grads"):
            for name, value in (getattr(self, group) or {}).items():
                put_tensor(f"{group}/{name}", value)
        for key in ("explicit_grads", "input_grad"):
            if getattr(self, key) is not None:
                put_tensor(key, getattr(self, key))
        if self.loss is not None:
            arrays["loss"] = np.array(self.loss, dtype=np.float64)
        header = {"format": FORMAT, "version": VERSION, "kind": self.kind, "hidden_size": self.hidden_size,
                  "names": list(self.names), "forward_overflow_step": self.forward_overflow_step,
                  "meta": self.meta, "tensor_dtypes": tensor_dtypes}
        arrays["header"] = np.array(json.dumps(header))
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "Trace":
        """The inverse of :meth:`to_arrays` (tensors come back on the CPU)."""
        header = json.loads(str(arrays["header"]))
        if header.get("format") != FORMAT:
            raise ValueError("not a gradlab trace (no 'gradlab-trace' header)")
        if header.get("version") != VERSION:
            raise ValueError(f"gradlab trace version {header.get('version')}; this gradlab reads version {VERSION}")
        dtypes = header["tensor_dtypes"]

        def tensor(key: str) -> torch.Tensor:
            t = torch.from_numpy(np.array(arrays[key]))
            dtype = getattr(torch, dtypes[key])
            return t.view(dtype) if dtype in _STORED_AS else t

        def group(prefix: str, as_tensor: bool):
            keys = [k for k in arrays if k.startswith(prefix + "/")]
            if not keys:
                return None
            return {k[len(prefix) + 1:]: tensor(k) if as_tensor else np.array(arrays[k]) for k in keys}

        norms = group("norms", False)
        norms = {name: norms[name] for name in header["names"]}  # the saved order
        get = lambda key: np.array(arrays[key]) if key in arrays else None  # noqa: E731
        return cls(kind=header["kind"], hidden_size=header["hidden_size"], norms=norms,
                   explicit_norms=np.array(arrays["explicit_norms"]), log10_norms=group("log10_norms", False),
                   distance_log10_norms=group("distance_log10_norms", False),
                   explicit_log10_norms=get("explicit_log10_norms"), mask=np.array(arrays["mask"]),
                   grads=group("grads", True),
                   explicit_grads=tensor("explicit_grads") if "explicit_grads" in arrays else None,
                   loss=float(arrays["loss"]) if "loss" in arrays else None,
                   param_grads=group("param_grads", True),
                   input_grad=tensor("input_grad") if "input_grad" in arrays else None,
                   initial_grads=group("initial_grads", True),
                   forward_overflow_step=header["forward_overflow_step"], meta=header["meta"])

    def save(self, path: Union[str, Path], overwrite: bool = False) -> Path:
        """Write the trace to ``path`` (``.npz``), whole or not at all; an existing file is kept
        unless ``overwrite``. Returns the path."""
        path = Path(path)
        arrays = self.to_arrays()

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to a name
                np.savez(f, **arrays)

        return atomic_write(path, write, overwrite=overwrite)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Trace":
        """A trace :meth:`save` wrote."""
        try:  # the file opened here, so that it is closed even when numpy's reader fails part way
            with open(Path(path), "rb") as f:
                archive = np.load(f, allow_pickle=False)
                if not isinstance(archive, np.lib.npyio.NpzFile):
                    raise ValueError("one array, not an archive")
                with archive:
                    return cls.from_arrays({k: archive[k] for k in archive.files})
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: not a readable gradlab trace ({type(exc).__name__}: {exc})".splitlines()[0]) from None
