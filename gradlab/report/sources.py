"""Reading the run directories gradlab writes into one record per run: what kind of run, its
configuration, and the numbers its figures and tables need (plain dicts and arrays, no models)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradlab.watch.rundir import INDEX as WATCH_INDEX, load_watch

KINDS = ("analyze", "train", "watch", "sweep")


class NotARun(ValueError):
    """A path that is not a run directory gradlab wrote (or one whose files are damaged)."""


@dataclass
class Source:
    """One run directory. kind: "analyze", "train" or "watch"; summary: its summary.json (the
    watch's index); tables: its CSV files by name, each a list of rows (dicts of text)."""

    kind: str
    path: Path
    summary: dict[str, Any]
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # spectra, units (standard set); a watch's steps

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        return self.summary.get("config", {})


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotARun(f"{path}: not readable JSON ({type(exc).__name__})") from None


def _csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise NotARun(f"{path}: not a readable CSV file ({type(exc).__name__})") from None


def read_run(path: Path) -> Source:
    """The run in ``path``: an analyze run (summary.json, trace.csv), a train run (summary.json,
    history.csv, evals.csv, traces.csv), a watch run (watch.json and its step files) or a sweep
    directory (sweep.json, sweep.csv and its figures' sidecars)."""
    path = Path(path)
    if not path.is_dir():
        raise NotARun(f"{path}: no such run directory")
    if (path / "sweep.json").is_file():
        figures = {p.stem: _json(p) for p in sorted(path.glob("sweep_*.json"))}
        table = _csv(path / "sweep.csv") if (path / "sweep.csv").is_file() else []
        return Source("sweep", path, _json(path / "sweep.json"), {"table": table}, figures)
    if (path / WATCH_INDEX).is_file():
        index = _json(path / WATCH_INDEX)
        try:  # every step file read now, so that a damaged one stops the report before it starts
            steps = load_watch(path)
        except ValueError as exc:
            raise NotARun(str(exc)) from None
        return Source("watch", path, index, extras={"steps": steps})
    if (path / "summary.json").is_file():
        summary = _json(path / "summary.json")
        if (path / "trace.csv").is_file():
            extras = {name: _json(path / f"{name}.json") for name in ("spectra", "units") if (path / f"{name}.json").is_file()}
            return Source("analyze", path, summary, {"trace": _csv(path / "trace.csv")}, extras)
        if (path / "history.csv").is_file():
            names = ("history", "evals", "traces")
            return Source("train", path, summary, {n: _csv(path / f"{n}.csv") for n in names if (path / f"{n}.csv").is_file()})
    raise NotARun(f"{path}: not a gradlab run directory (an analyze, train or watch run)")


def column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    """One CSV column as float64 (an empty cell is NaN; "inf" and "-inf" as written)."""
    return np.array([float(r[name]) if r.get(name, "") != "" else np.nan for r in rows], dtype=float)


def analysis_curves(source: Source) -> dict[str, dict[str, np.ndarray]]:
    """An analyze run's trace.csv by model: distance [K] and the per-distance columns [K]."""
    out: dict[str, dict[str, np.ndarray]] = {}
    rows = source.tables["trace"]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: int(r["distance"]))
        out[model] = {name: column(mine, name) for name in mine[0] if name not in ("model", "t", "status_h", "status_c")}
        out[model]["status_h"] = np.array([r["status_h"] for r in mine], dtype=object)
        out[model]["status_c"] = np.array([r.get("status_c", "") for r in mine], dtype=object)
    return out


def training_series(source: Source) -> tuple[dict[str, list], list[dict], list[dict]]:
    """A train run's (history as columns, evals as rows of numbers, traces as
    [{"step", "profile": {state: log10 mean by distance}}])."""
    history_rows = source.tables.get("history", [])
    history = {name: column(history_rows, name).tolist() for name in (history_rows[0] if history_rows else {})}
    evals = [{k: float(v) for k, v in r.items() if v != ""} for r in source.tables.get("evals", [])]
    traces: dict[int, dict[str, dict[int, float]]] = {}
    for r in source.tables.get("traces", []):
        traces.setdefault(int(r["step"]), {}).setdefault(r["state"], {})[int(r["distance"])] = float(r["log10_mean_grad_norm"])
    profiles = [{"step": step, "profile": {s: [by_k[k] for k in sorted(by_k)] for s, by_k in states.items()}}
                for step, states in sorted(traces.items())]
    return history, evals, profiles
