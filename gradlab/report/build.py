"""``gradlab report``: a fresh report directory with every run's figures (PNG, PDF and a JSON
sidecar each) and report.html, written whole or not at all; with no run given, the standard set is
run first (analyze runs of the three models, short training runs) and reported."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gradlab.common.files import fresh_run_dir, save_figure, write_json
from gradlab.common.versions import versions
from gradlab.report import page
from gradlab.report.figures import figures_of
from gradlab.report.sources import Source, read_run
from gradlab.report.standard import standard_runs
from gradlab.report.tables import TABLES

REPORT_PAGE = "report.html"
HEADINGS = {"analyze": "Gradient decay at a glance (gradlab analyze)", "train": "Training (gradlab train)",
            "watch": "A watched training run (gradlab.watch)", "sweep": "A sweep over seeds and settings (gradlab sweep)"}
INTROS = {"analyze": "Per model and state: the fitted decay factor per step, how many steps back the mean gradient "
                     "has fallen by 10⁻⁶, and theory's predictions for the factor beside it (Lyapunov: the mean "
                     "one-step contraction along the trajectory; Pascanu: the bound γ·σ_max(W_hh)).",
          "train": "The score on the test set is that of the best dev checkpoint.",
          "watch": "Every recorded step of the user's own training loop, per module, state, layer and direction.",
          "sweep": "One row per setting: the number of seeds, and the mean, standard deviation and 95 % interval "
                   "(Student's t) of each metric; empty where a setting has one seed."}


def write_report(run_dirs: Sequence[Path], out: Path, quick: bool = False, progress: bool = True) -> Path:
    """Report on ``run_dirs`` (or, when empty, on the standard set run inside the report) in a
    fresh directory under ``out``; returns it."""
    sources: list[Source] = [read_run(p) for p in run_dirs]  # a bad one is refused before anything is written
    with fresh_run_dir(Path(out), "report") as rd:
        if not sources:
            sources = [read_run(p) for p in standard_runs(rd.staging / "runs", quick, progress)]
        shown = lambda path: str(path).replace(str(rd.staging), str(rd.final))  # noqa: E731  where it will be
        sections = []
        for source in sources:
            columns, rows_of = TABLES[source.kind]
            columns = columns(source) if callable(columns) else columns
            figures = []
            for drawn in figures_of(source):
                png, pdf = save_figure(drawn.figure, rd.staging / drawn.stem)
                write_json(rd.staging / f"{drawn.stem}.json", {"run": shown(source.path), **drawn.data,
                                                               "caption": drawn.caption})
                figures.append((png.read_bytes(), drawn.caption, f"{drawn.stem}.png/.pdf/.json"))
            sections.append({"heading": f"{HEADINGS[source.kind]}: {source.name}", "path": shown(source.path), "intro": INTROS[source.kind],
                             "tables": [(columns, rows_of(source))], "figures": figures,
                             "config": source.config or {k: v for k, v in source.summary.items() if k != "steps"}})
        write_json(rd.staging / "report.json", {"runs": [{"kind": s.kind, "path": shown(s.path)} for s in sources],
                                                "versions": versions()})
        text = page.render("gradlab report", sections, versions())
        (rd.staging / REPORT_PAGE).write_text(text.replace(str(rd.staging), str(rd.final)))  # the paths it will have
    return rd.final
