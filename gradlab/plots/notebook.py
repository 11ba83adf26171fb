"""Jupyter: a Trace, an Analysis and a watch handle, as a cell's last value, show their decay
figure and a short summary table (drawn by the same figure functions as everything else).

:func:`register` adds HTML (table and figure) and PNG formatters to a running IPython; ``import
gradlab`` calls it when IPython is running. The types are named, not imported, so neither the
engine nor the watch imports the plots, and matplotlib loads only when something is displayed.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Callable

#: (module, type name) → (figure of the object, its summary rows).
DISPLAYED = {("gradlab.engine.trace", "Trace"): ("trace", "trace"),
             ("gradlab.analysis.pipeline", "Analysis"): ("analysis", "analysis"),
             ("gradlab.watch.handle", "Watch"): ("watch", "watch")}


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def trace_summary(trace) -> tuple[Any, list[tuple]]:
    """(decay figure of the top layer's forward direction, rows: state, factor per step, R², horizon)."""
    from gradlab.analysis.metrics import decay_profile, fit_decay, horizon
    from gradlab.plots.decay import decay_figure

    if trace.forward_overflow_step is not None:
        return None, [("forward pass", f"overflowed at step {trace.forward_overflow_step}", None, None)]
    profiles, fits, rows = {}, {}, []
    for name in trace.names:
        prof = decay_profile(trace.log10_grad_norms(name), trace.grad_norms(name), smallest_normal=trace.smallest_normal)
        fits[name], profiles[name] = fit_decay(prof), prof
        hz = horizon(prof)
        rows.append((name, fits[name].factor, fits[name].r_squared, hz.distance if hz.distance is not None else hz.reason))
    title = f"{trace.kind}, T = {trace.num_steps}, B = {trace.batch_size}, top layer"
    return decay_figure({trace.kind: profiles}, {trace.kind: fits}, title=title, dtype=trace.meta.get("dtype", "")), rows


def analysis_summary(analysis) -> tuple[Any, list[tuple]]:
    from gradlab.plots.decay import decay_figure

    shown = [r for r in analysis.results if r.profiles]
    rows = [(f"{r.kind} {s}", r.fits[s].factor, r.fits[s].r_squared,
             r.horizons[s].distance if r.horizons[s].distance is not None else r.horizons[s].reason)
            for r in shown for s in r.profiles]
    if not shown:
        return None, rows
    cfg = analysis.config
    return decay_figure({r.kind: r.profiles for r in shown}, {r.kind: r.fits for r in shown},
                        title=f"{cfg.task}, T = {cfg.length}, H = {cfg.hidden}", dtype=cfg.dtype), rows


def watch_summary(w) -> tuple[Any, list[tuple]]:
    """The last recorded step: every watched curve's decay from each sample's last step."""
    from gradlab.analysis.metrics import decay_of
    from gradlab.plots.watch import step_decay_figure

    if not w.traces:
        return None, [("no step recorded yet", None, None, None)]
    last = w.traces[-1]
    profiles, fits, rows = {}, {}, []
    for module, trace in last.items():
        if trace.distance_log10_norms is None:
            continue
        for name in trace.names:
            for k in range(trace.num_layers):
                for d in range(trace.num_directions):
                    label = f"{module or 'model'} {name}, layer {k}" + (", reverse" if d else "")
                    profiles[label], fits[label], hz = decay_of(trace, name, k, d)
                    rows.append((label, fits[label].factor, fits[label].r_squared,
                                 hz.distance if hz.distance is not None else hz.reason))
    return step_decay_figure(profiles, fits, title=f"step {last.step}"), rows


SUMMARIES: dict[str, Callable] = {"trace": trace_summary, "analysis": analysis_summary, "watch": watch_summary}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def to_png(obj, kind: str):
    fig, _ = SUMMARIES[kind](obj)
    return None if fig is None else _png(fig)


def to_html(obj, kind: str) -> str:
    fig, rows = SUMMARIES[kind](obj)
    head = "<tr><th>curve</th><th>decay factor per step</th><th>R²</th><th>horizon (steps to 1e-6)</th></tr>"
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    image = "" if fig is None else f'<img src="data:image/png;base64,{base64.b64encode(_png(fig)).decode()}">'
    return f"<div><pre>{html.escape(_heading(obj, kind))}</pre><table>{head}{body}</table>{image}</div>"


def _heading(obj, kind: str) -> str:
    if kind == "analysis":  # a dataclass holding the batch: its repr is the data
        cfg = obj.config
        return f"Analysis({', '.join(cfg.models)} on {cfg.task}, T={cfg.length}, H={cfg.hidden}, B={cfg.batch})"
    return repr(obj)


def register(ipython) -> None:
    """Add the formatters to ``ipython`` (``IPython.get_ipython()``)."""
    formatters = ipython.display_formatter.formatters
    for (module, name), (kind, _) in DISPLAYED.items():
        formatters["text/html"].for_type_by_name(module, name, lambda obj, k=kind: to_html(obj, k))
        formatters["image/png"].for_type_by_name(module, name, lambda obj, k=kind: to_png(obj, k))
