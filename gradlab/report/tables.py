"""The summary tables of a report, one row per model and state (analyze), per training run (train)
or per watched curve (watch): plain values read from each run's summary, None where absent."""

from __future__ import annotations

from typing import Any, Optional

from gradlab.report.sources import Source

ANALYZE_COLUMNS = ("run", "model", "state", "decay factor per step (fit)", "R²", "horizon (steps to 1e-6)",
                   "Lyapunov prediction", "Pascanu bound", "loss", "distances underflowed")
TRAIN_COLUMNS = ("run", "model", "task", "T", "steps", "test score", "best dev score (step)", "chance", "seconds",
                 "stopped")
WATCH_COLUMNS = ("run", "modules", "recorded steps", "every")


def _factor(theory: dict, key: str) -> Optional[float]:
    return (theory.get(key) or {}).get("factor_per_step")


def analyze_rows(source: Source) -> list[tuple[Any, ...]]:
    rows = []
    for model, entry in source.summary.get("models", {}).items():
        theory = entry.get("theory") or {}
        for state, g in entry.get("gradients", {}).items():
            fit, hz = g.get("decay_factor_per_step", {}), g.get("horizon", {})
            rows.append((source.name, model, state, fit.get("factor"), fit.get("r_squared"),
                         hz.get("distance") if hz.get("distance") is not None else hz.get("reason"),
                         _factor(theory, "lyapunov"), _factor(theory, "pascanu_bound"), entry.get("loss"),
                         g.get("steps_underflowed")))
    return rows


def train_rows(source: Source) -> list[tuple[Any, ...]]:
    s, cfg = source.summary, source.config
    test, best = s.get("test") or {}, s.get("best_dev") or {}
    metric = test.get("metric", "")
    return [(source.name, cfg.get("model"), cfg.get("task"), cfg.get("length"), s.get("steps"),
             f"{metric} {test.get('value'):.3f}" if test.get("value") is not None else None,
             f"{best.get('value'):.3f} ({s.get('best_step')})" if best.get("value") is not None else None,
             (s.get("task") or {}).get("chance"), s.get("seconds"), s.get("diverged"))]


def watch_rows(source: Source) -> list[tuple[Any, ...]]:
    s = source.summary
    return [(source.name, ", ".join(s.get("modules", [])) or "model", len(s.get("steps", [])), s.get("every"))]


def sweep_columns(source: Source) -> tuple[str, ...]:
    return tuple(source.tables["table"][0]) if source.tables.get("table") else ("setting",)


def sweep_rows(source: Source) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in source.tables.get("table", [])]


TABLES = {"analyze": (ANALYZE_COLUMNS, analyze_rows), "train": (TRAIN_COLUMNS, train_rows),
          "watch": (WATCH_COLUMNS, watch_rows), "sweep": (sweep_columns, sweep_rows)}
