"""One file per recurrent architecture, each an :class:`Architecture` that owns its step, its
forward tape, its backward sweep, its local derivatives and its one-step Jacobian.

``ARCHITECTURES`` registers them by name. Adding an architecture is one new file here, one line
in ``ARCHITECTURES``, a model class in ``gradlab/models/recurrent.py`` and its tests.
"""

from gradlab.models.architectures.base import Architecture, CarryScale, RowNorms, SweepGrads, Tape, first_steps
from gradlab.models.architectures.gru import GRUArchitecture
from gradlab.models.architectures.lstm import LSTMArchitecture
from gradlab.models.architectures.srn import NONLINEARITIES, SRNArchitecture

ARCHITECTURES: dict[str, type[Architecture]] = {a.name: a for a in (SRNArchitecture, LSTMArchitecture,
                                                                     GRUArchitecture)}
#: How figures and tables name each architecture.
LABELS = {name: a.label for name, a in ARCHITECTURES.items()}

__all__ = ["ARCHITECTURES", "Architecture", "CarryScale", "GRUArchitecture", "LABELS", "LSTMArchitecture",
           "NONLINEARITIES", "RowNorms", "SRNArchitecture", "SweepGrads", "Tape", "first_steps"]
