"""The files of a ``gradlab train`` run: config.json, summary.json, history.csv, evals.csv,
traces.csv, checkpoint.pt (the best dev weights) and training.png/pdf."""

from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from gradlab.common.files import fresh_run_dir, save_figure, write_json
from gradlab.common.versions import versions
from gradlab.plots.training import training_figure
from gradlab.tasks import TASKS
from gradlab.tasks.weights import CHECKPOINT_FILE, save_checkpoint
from gradlab.training.loop import TrainResult


def train_summary(result: TrainResult) -> dict:
    cfg, task = result.config, TASKS[result.config.task]
    return {
        "command": "gradlab train",
        "config": asdict(cfg),
        "problem": result.problem.describe(cfg.loss_at, cfg.reduction),
        "task": {"name": task.name, "summary": task.summary, "metric": task.metric, "chance": result.chance},
        "steps": len(result.history.get("loss", [])),
        "final_training_loss": result.history["loss"][-1] if result.history.get("loss") else None,
        "best_step": result.best_step,
        "best_dev": asdict(result.best_dev) if result.best_dev else None,
        "test": asdict(result.test) if result.test else None,
        "seconds": result.seconds,
        "diverged": result.diverged,
        "engine": result.engine,
        "notes": {"grad_norms": "L2 norm of each parameter's gradient at every step, before clipping (history.csv)",
                  "traces": "log10 of the batch-mean total gradient norm against distance from the last step, "
                            "on the first trace_batch dev examples, recorded by gradlab.watch on one backward pass "
                            "there (traces.csv)",
                  "checkpoint": "the weights with the best dev score; gradlab analyze --checkpoint reads it"},
        "versions": versions(),
    }


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_train_run(result: TrainResult, out: Optional[Path] = None) -> Path:
    """Write the run directory (whole or not at all) under ``out``; returns its path."""
    cfg = result.config
    with fresh_run_dir(Path(out or cfg.out), f"train-{cfg.model}-{cfg.task}-len{cfg.length}") as run:
        d = run.staging
        write_json(d / "config.json", asdict(cfg))
        write_json(d / "summary.json", train_summary(result))
        keys = list(result.history)
        _write_csv(d / "history.csv", keys, zip(*(result.history[k] for k in keys)))
        if result.evals:
            _write_csv(d / "evals.csv", list(result.evals[0]), (list(e.values()) for e in result.evals))
        if result.traces:
            _write_csv(d / "traces.csv", ["step", "state", "distance", "log10_mean_grad_norm"],
                       ((tr["step"], s, k, v) for tr in result.traces for s, vals in tr["profile"].items()
                        for k, v in enumerate(vals)))
        save_checkpoint(d / CHECKPOINT_FILE, result.problem, asdict(cfg),
                        {"step": result.best_step, "dev": asdict(result.best_dev) if result.best_dev else None})
        metric = TASKS[cfg.task].metric
        title = f"{cfg.model.upper()} on {cfg.task}, T = {cfg.length}, H = {cfg.hidden}, {cfg.optimizer} lr {cfg.lr:g}, clip {cfg.clip}"
        save_figure(training_figure(result.history, result.evals, result.traces, metric, title), d / "training")
    return run.final
