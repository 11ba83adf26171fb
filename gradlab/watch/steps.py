"""The traces of one recorded step, by module name."""

from __future__ import annotations


class StepTraces(dict):
    """The traces of one recorded step: module name (as in ``named_modules()``; ``name#1``, … for
    further calls in the same step) → :class:`~gradlab.Trace`. ``step`` is the step's number."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def __repr__(self) -> str:
        return f"StepTraces(step={self.step}, {', '.join(self)})"
