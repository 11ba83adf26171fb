"""Converters between gradlab's (torch's) parameter layout and the layouts of course material.

gradlab keeps one internal layout, torch's; every other layout is a converter at the edge.
"""

from gradlab.models.layouts.d2l import from_d2l, to_d2l
from gradlab.models.layouts.nndl import from_nndl, to_nndl

__all__ = ["from_d2l", "from_nndl", "to_d2l", "to_nndl"]
