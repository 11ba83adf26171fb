"""Hand-derived backward passes, one module per architecture: a forward sweep that keeps what
the backward needs (the tape), and the backward sweep over time. The driver is gradlab.engine.bptt."""

from gradlab.models.architectures import gru, lstm, srn

ARCHITECTURES = {"srn": srn, "lstm": lstm, "gru": gru}
