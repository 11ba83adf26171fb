"""A watch's TensorBoard sink (``pip install "gradlab[tensorboard]"``): scalars and figures per step.

For every recorded module, layer, direction and state, at each recorded training step:

- scalars ``gradlab/<module>/<state>/layer<k>[/reverse]/decay_factor`` (the fitted factor per step),
  ``…/horizon`` (the distance at which the gradient has fallen by 1e-6; absent while beyond the
  length) and ``…/log10_grad_at_<k>`` for distances 0, 1, 10, 100 that the batch reaches;
- figures ``gradlab/<module>/decay`` (this step's curves) and ``…/<state>/layer<k>[/reverse]/through_training``
  (the heatmap of log10 norm over every recorded step so far × distance).

All of them come from the watch's distance sweep (``gradlab.decay_of``).
"""

from __future__ import annotations

from typing import Union

import numpy as np

from gradlab.analysis.metrics import decay_of
from gradlab.plots.watch import decay_through_training_figure, step_decay_figure
from gradlab.watch.steps import StepTraces
from gradlab.watch.summary import curves

DISTANCES = (0, 1, 10, 100)


class TensorBoardSink:
    """Writes each finished step to a ``torch.utils.tensorboard.SummaryWriter`` (given, or made on LOGDIR)."""

    def __init__(self, target: Union[str, object]) -> None:
        if isinstance(target, str) or hasattr(target, "__fspath__"):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard itself is missing
                raise ImportError('watch(tensorboard=…) needs TensorBoard: pip install "gradlab[tensorboard]"') from None
            self.writer, self.owned = SummaryWriter(str(target)), True
        else:
            self.writer, self.owned = target, False
        self.history: dict[tuple[str, str], tuple[list[int], list[np.ndarray]]] = {}

    def write(self, traces: StepTraces) -> None:
        step = traces.step
        for module, trace in traces.items():
            if trace.distance_log10_norms is None:
                continue  # a cell: autograd's totals only
            profiles, fits = {}, {}
            for suffix, name, k, d in curves(trace):
                profile, fit, hz = decay_of(trace, name, k, d)
                tag = f"gradlab/{module or 'model'}/{suffix}"
                if fit.factor is not None:
                    self.writer.add_scalar(f"{tag}/decay_factor", fit.factor, step)
                if hz.distance is not None:
                    self.writer.add_scalar(f"{tag}/horizon", hz.distance, step)
                for distance in DISTANCES:
                    if distance < len(profile.log10_mean) and np.isfinite(profile.log10_mean[distance]):
                        self.writer.add_scalar(f"{tag}/log10_grad_at_{distance}", profile.log10_mean[distance], step)
                steps, rows = self.history.setdefault((module, suffix), ([], []))
                steps.append(step)
                rows.append(profile.log10_mean)
                self.writer.add_figure(f"{tag}/through_training", decay_through_training_figure(
                    steps, rows, title=f"{module or 'model'} {suffix}"), step)
                profiles[suffix], fits[suffix] = profile, fit
            self.writer.add_figure(f"gradlab/{module or 'model'}/decay",
                                   step_decay_figure(profiles, fits, title=f"{module or 'model'}, step {step}"), step)
        self.writer.flush()

    def close(self) -> None:
        if self.owned:
            self.writer.close()
