"""gradlab: see how far back a gradient reaches in SRNs, LSTMs and GRUs."""

from importlib.metadata import PackageNotFoundError, version

from gradlab.engine.bptt import BPTTResult, bptt
from gradlab.models.convert import from_torch, to_torch, to_torch_cell
from gradlab.models.layouts import from_d2l, from_nndl, to_d2l, to_nndl
from gradlab.models.hooks import HookPoint, attached, hook_points
from gradlab.models.recurrent import GRU, LSTM, SRN, RecurrentModel
from gradlab.engine.record import record
from gradlab.analysis.theory import lyapunov_exponents
from gradlab.engine.trace import Trace

try:
    __version__ = version("gradlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BPTTResult",
    "GRU",
    "LSTM",
    "SRN",
    "HookPoint",
    "RecurrentModel",
    "Trace",
    "attached",
    "bptt",
    "from_d2l",
    "from_nndl",
    "from_torch",
    "hook_points",
    "lyapunov_exponents",
    "record",
    "to_d2l",
    "to_nndl",
    "to_torch",
    "to_torch_cell",
    "__version__",
]
