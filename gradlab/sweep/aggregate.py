"""sweep.csv: one row per setting (the tasks that differ only in --seed), the number of seeds and the
mean, standard deviation and 95 % confidence interval (Student's t, scipy) of each metric. With one
seed the standard deviation and interval are absent: an empty cell, never NaN."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
from scipy import stats

SEED = "--seed"
CONFIDENCE = 0.95


def metrics_of(command: str, summary: dict) -> dict[str, Optional[float]]:
    """The numbers that matter of one finished run, from its summary.json."""
    if command == "train":
        test, best = summary.get("test") or {}, summary.get("best_dev") or {}
        return {"test_score": test.get("value"), "best_dev_score": best.get("value")}
    (model, entry), = summary["models"].items()  # one model per task
    h = entry["gradients"]["h"]
    return {"decay_factor_h": h["decay_factor_per_step"]["factor"], "horizon_h": h["horizon"]["distance"]}


def interval(values: Sequence[float]) -> dict[str, Optional[float]]:
    """{"n", "mean", "std", "ci95_low", "ci95_high"} of the finite values; std and the interval
    None for fewer than two."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return {"n": 0, "mean": None, "std": None, "ci95_low": None, "ci95_high": None}
    if len(x) == 1:
        return {"n": 1, "mean": float(x[0]), "std": None, "ci95_low": None, "ci95_high": None}
    mean, std = float(x.mean()), float(x.std(ddof=1))
    if std == 0:
        lo = hi = mean
    else:
        lo, hi = stats.t.interval(CONFIDENCE, len(x) - 1, loc=mean, scale=std / math.sqrt(len(x)))
    return {"n": len(x), "mean": mean, "std": std, "ci95_low": float(lo), "ci95_high": float(hi)}


def aggregate(rows: Sequence[dict[str, Any]], setting_flags: Sequence[str], metric_names: Sequence[str]) -> list[dict]:
    """rows: one per finished task, {flag: value, ..., metric: number}. One output row per setting."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[f] for f in setting_flags), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(setting_flags, key))
        row["seeds"] = len(members)
        for m in metric_names:
            for stat, value in interval([r.get(m) for r in members]).items():
                if stat != "n":
                    row[f"{m}_{stat}"] = value
        out.append(row)
    return out
