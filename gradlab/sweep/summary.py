"""The sweep's table and figures, from its finished run directories (read back from disk, so a
resumed sweep summarises every run, old and new)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from gradlab.common.files import atomic_write, save_figure, write_json
from gradlab.sweep.aggregate import SEED, aggregate, metrics_of
from gradlab.sweep.spec import Task

METRICS = {"train": ("test_score", "best_dev_score"), "analyze": ("decay_factor_h", "horizon_h")}


def finished_rows(out: Path, command: str, tasks: Sequence[Task]) -> list[dict]:
    rows = []
    for t in tasks:
        summary_path = out / "runs" / t.name / "summary.json"
        if summary_path.is_file():
            rows.append({**dict(t.settings), **metrics_of(command, json.loads(summary_path.read_text()))})
    return rows


def _cell(v) -> str:
    return "" if v is None else str(v)


def write_summary(out: Path, command: str, tasks: Sequence[Task], varied_flags: Sequence[str]) -> list[dict]:
    setting = [f for f in varied_flags if f != SEED]
    table = aggregate(finished_rows(out, command, tasks), setting, METRICS[command])
    columns = [*setting, "seeds", *(f"{m}_{s}" for m in METRICS[command] for s in ("mean", "std", "ci95_low", "ci95_high"))]

    def write(p: Path) -> None:
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([c.lstrip("-") for c in columns])
            w.writerows([[_cell(r.get(c)) for c in columns] for r in table])

    atomic_write(out / "sweep.csv", write, overwrite=True)
    x_flag = next((f for f in setting if f != "--model"), None)
    fixed_model = dict(tasks[0].settings).get("--model", command) if tasks else command  # not varied: one curve
    if table and x_flag is not None:
        from gradlab.plots.sweep import sweep_figure

        for metric in METRICS[command]:
            curves = {}
            for r in table:
                curves.setdefault(r.get("--model", fixed_model), []).append(
                    (r[x_flag], r[f"{metric}_mean"], r[f"{metric}_ci95_low"], r[f"{metric}_ci95_high"]))
            fig = sweep_figure(curves, x_flag.lstrip("-"), metric.replace("_", " "))
            stem = out / f"sweep_{metric}"
            save_figure(fig, stem, overwrite=True)
            write_json(stem.with_suffix(".json"), {"x": x_flag, "metric": metric, "curves": curves,
                                                   "interval": "95 % Student t over seeds"})
    return table
