"""gradlab: see how far back a gradient reaches in SRNs, LSTMs and GRUs.

Everything the README teaches is importable from here and listed in ``__all__``. The package is
layered, each folder importing only from those before it (tests/test_layers.py enforces it):
common → models → tasks → engine → analysis → plots → watch → training → runs → sweep → report → cli.

Conventions: inside every result time is the leading axis ([T, B, …]); numbers about gradients
(norms, log10 norms) are NumPy float64 arrays, gradients themselves torch tensors in the run's
dtype and device, shaped like what they are the gradient of.
"""

import importlib

from gradlab.analysis.jacobians import JacobianSpectra, jacobian_spectra
from gradlab.analysis.metrics import (DecayFit, DecayProfile, Horizon, decay_of, decay_profile, distance_profile,
                                      fit_decay, horizon)
from gradlab.analysis.pipeline import Analysis, AnalyzeConfig, analyze
from gradlab.analysis.theory import lyapunov_exponents, pascanu_bound
from gradlab.analysis.verification import VerifyConfig, verify
from gradlab.common.files import save_figure
from gradlab.common.versions import gradlab_version
from gradlab.engine.bptt import bptt, tapes
from gradlab.engine.checkpointed import checkpointed_norms
from gradlab.engine.record import record
from gradlab.engine.trace import Trace
from gradlab.models.convert import from_torch, to_torch, to_torch_cell
from gradlab.models.hooks import HookPoint, attached, hook_points
from gradlab.models.layouts import from_d2l, from_nndl, to_d2l, to_nndl
from gradlab.models.recurrent import GRU, LSTM, SRN, RecurrentModel
from gradlab.models.regimes import initialise
from gradlab.training.loop import TrainConfig, TrainResult, train
from gradlab.watch.handle import Watch, watch
from gradlab.watch.rundir import load_watch
from gradlab.watch.steps import StepTraces

__version__ = gradlab_version()

#: Figures, imported on first use so that ``import gradlab`` (the engine) does not load matplotlib.
FIGURES = {"decay_figure": "gradlab.plots.decay", "training_figure": "gradlab.plots.training",
           "step_decay_figure": "gradlab.plots.watch", "decay_through_training_figure": "gradlab.plots.watch"}


def _show_in_notebooks() -> None:
    """In a running IPython (Jupyter), Traces, analyses and watch handles display their decay figure."""
    import sys

    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None and getattr(shell, "display_formatter", None) is not None:
        from gradlab.plots.notebook import register

        register(shell)


_show_in_notebooks()


def __getattr__(name: str):
    if name in FIGURES:
        return getattr(importlib.import_module(FIGURES[name]), name)
    raise AttributeError(f"module 'gradlab' has no attribute {name!r}")

__all__ = [
    # models
    "SRN", "LSTM", "GRU", "RecurrentModel", "HookPoint", "attached", "hook_points", "initialise",
    "from_torch", "to_torch", "to_torch_cell", "from_nndl", "to_nndl", "from_d2l", "to_d2l",
    # engine
    "Trace", "record", "bptt", "checkpointed_norms", "tapes",
    # analysis
    "analyze", "AnalyzeConfig", "Analysis", "verify", "VerifyConfig", "decay_profile", "distance_profile",
    "decay_of", "fit_decay", "horizon",
    "DecayProfile", "DecayFit", "Horizon", "pascanu_bound", "lyapunov_exponents", "jacobian_spectra",
    "JacobianSpectra",
    # figures (matplotlib Figures from results, never from a model)
    "decay_figure", "training_figure", "step_decay_figure", "decay_through_training_figure", "save_figure",
    # watch
    "watch", "Watch", "StepTraces", "load_watch",
    # training
    "train", "TrainConfig", "TrainResult",
    "__version__",
]
