"""NNDL 6.1/6.3: SRN vs LSTM test accuracy on digit-sum against sequence length, book settings, over seeds.

For each model, length L = 10, 15, …, 35 and seed: Embedding(10, 32), hidden 32, the book's
Xavier-uniform initialisation, Adam lr 1e-3, batch 8, no shuffling, 500 epochs, dev accuracy every 100
steps, the best dev checkpoint scored on the test set. Seed 0 trains on the book's datasets; seed s
draws the datasets with the book's construction from s, and the weights from s. The runs go through
``gradlab sweep train`` (Dask, --workers processes) into --runs, one gradlab train run directory each
(its checkpoint.pt the best dev weights); the same command again keeps the finished runs. Writes
<out>/nndl_memory.{png,pdf,json}: mean test accuracy with 95 % t intervals over seeds, the paired
difference LSTM − SRN at each length, and the slope against length, and prints the table.

    python experiments/nndl_memory.py                 # 5 seeds: ~30 min on 2 cores
    python experiments/nndl_memory.py --seeds 0       # the book's single run: ~6 min
    python experiments/nndl_memory.py --sizes 300,500,500 --out figures/dev500   # dev and test sets of 500
    python experiments/nndl_memory.py --smoke         # seconds, for the test suite
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run, start, sweep_options, sweep_runs, write_outputs  # noqa: E402

from gradlab.common.versions import versions  # noqa: E402
from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, new_figure  # noqa: E402
from gradlab.sweep.aggregate import CONFIDENCE, interval  # noqa: E402
from gradlab.tasks.digit_sum import TASK  # noqa: E402

NAME = "nndl_memory"
#: The book's training settings as gradlab train flags (the models, lengths and seeds vary).
BOOK = ("--task", "digit-sum", "--hidden", "32", "--init", "nndl", "--epochs", "500", "--batch", "8",
        "--lr", "0.001", "--optimizer", "adam", "--eval-every", "100")
FULL = {"models": ("srn", "lstm"), "lengths": (10, 15, 20, 25, 30, 35), "flags": BOOK, "seeds": "0-4"}
SMOKE = {"models": ("srn", "lstm"), "lengths": (5, 10), "seeds": "0-1",
         "flags": ("--task", "digit-sum", "--hidden", "8", "--init", "nndl", "--epochs", "1", "--batch", "8",
                   "--eval-every", "20")}


def read_run(settings: dict, run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"model": settings["--model"], "length": int(settings["--len"]), "seed": int(settings["--seed"]),
            "test_accuracy": summary["test"]["value"], "best_dev_accuracy": summary["best_dev"]["value"],
            "best_step": summary["best_step"], "steps": summary["steps"], "seconds": summary["seconds"],
            "run": run_dir.name}


def slope(points: list[tuple[int, float]]) -> dict:
    """Least-squares slope of accuracy against length over every run, per step of length, with its
    95 % t interval (n − 2 degrees of freedom); None where fewer than three runs or one length."""
    x, y = np.array(points, dtype=float).T
    if len(x) < 3 or len(set(x)) < 2:
        return {"per_step": None, "ci95_low": None, "ci95_high": None}
    fit = stats.linregress(x, y)
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(x) - 2) * fit.stderr
    return {"per_step": float(fit.slope), "ci95_low": float(fit.slope - half), "ci95_high": float(fit.slope + half)}


def summarise(rows: list[dict], models, lengths) -> dict:
    """Per model and length the test accuracy's interval over seeds; per length the paired (same
    seed, so the same data) difference LSTM − SRN; per model the slope against length."""
    def acc(model, L):
        return {r["seed"]: r["test_accuracy"] for r in rows if r["model"] == model and r["length"] == L}

    table = {m: {str(L): interval(list(acc(m, L).values())) for L in lengths} for m in models}
    out = {"test_accuracy": table,
           "slope_per_step_of_length": {m: slope([(r["length"], r["test_accuracy"]) for r in rows if r["model"] == m])
                                        for m in models}}
    if set(models) >= {"srn", "lstm"}:
        diffs = {}
        for L in lengths:
            srn, lstm = acc("srn", L), acc("lstm", L)
            diffs[str(L)] = interval([lstm[s] - srn[s] for s in sorted(srn.keys() & lstm.keys())])
        out["lstm_minus_srn"] = diffs
    return out


def figure(rows: list[dict], summary: dict, models, lengths):
    fig, (ax,) = new_figure(height=4.6)
    seeds = len({r["seed"] for r in rows})
    for i, model in enumerate(models):
        shift = (i - (len(models) - 1) / 2) * 0.4  # side by side, so the bars do not hide each other
        cells = [summary["test_accuracy"][model][str(L)] for L in lengths]
        mean = np.array([c["mean"] for c in cells], dtype=float)
        lo = np.array([c["mean"] if c["ci95_low"] is None else c["ci95_low"] for c in cells], dtype=float)
        hi = np.array([c["mean"] if c["ci95_high"] is None else c["ci95_high"] for c in cells], dtype=float)
        x = np.asarray(lengths, dtype=float) + shift
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], fmt="o-", color=MODEL_COLORS[model], capsize=3, lw=1.4,
                    label=f"{MODEL_LABELS[model]}: mean, 95 % interval over {seeds} seeds")
        mine = [(r["length"] + shift, r["test_accuracy"]) for r in rows if r["model"] == model]
        ax.plot(*zip(*mine), ".", color=MODEL_COLORS[model], alpha=0.35, ms=5, label=f"{MODEL_LABELS[model]}: each seed")
    ax.axhline(TASK.chance, color="0.5", ls=":", label="always guessing 9 (0.10)")
    ax.set(xlabel="sequence length L (steps)", ylabel="test accuracy (best dev checkpoint)", ylim=(0, 1.02),
           xticks=list(lengths), title="Digit-sum memory (NNDL 6.1, 6.3)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=7.5, frameon=False)
    return fig


def _cell(c: dict) -> str:
    if c["mean"] is None:
        return "–"
    if c["ci95_low"] is None:
        return f"{c['mean']:.2f}"
    return f"{c['mean']:.2f} [{c['ci95_low']:.2f}, {c['ci95_high']:.2f}]"


def print_table(summary: dict, models, lengths) -> None:
    both = "lstm_minus_srn" in summary
    print("| L | " + " | ".join(MODEL_LABELS[m] for m in models) + (" | LSTM − SRN |" if both else " |"))
    print("|---|" + "---|" * (len(models) + both))
    for L in lengths:
        cells = [_cell(summary["test_accuracy"][m][str(L)]) for m in models]
        if both:
            cells.append(_cell(summary["lstm_minus_srn"][str(L)]))
        print(f"| {L} | " + " | ".join(cells) + " |")
    for m, s in summary["slope_per_step_of_length"].items():
        if s["per_step"] is not None:
            print(f"{MODEL_LABELS[m]}: accuracy changes by {s['per_step']:+.4f} per step of length "
                  f"[{s['ci95_low']:+.4f}, {s['ci95_high']:+.4f}]")


def main(argv=None) -> int:
    def extra(p):
        sweep_options(p, NAME, FULL["seeds"])
        p.add_argument("--sizes", default=None, metavar="TRAIN,DEV,TEST",
                       help="examples per split (default: the book's 300,100,100); multiples of 100 keep the book's "
                            "construction, e.g. 300,500,500 for dev and test sets of 500; sweep directory "
                            "runs/nndl_memory-sizes-TRAIN-DEV-TEST unless --runs is given")
    args = start(NAME, __doc__, argv, extra)
    plan = SMOKE if args.smoke else FULL
    seeds = SMOKE["seeds"] if args.smoke and args.seeds == FULL["seeds"] else args.seeds
    sized = [] if args.sizes is None else ["--sizes", args.sizes]
    if args.sizes is not None and args.runs is None:
        args.runs = Path("runs") / f"{NAME}-sizes-{args.sizes.replace(',', '-')}"
    flags = ["--model", ",".join(plan["models"]), "--len", ",".join(map(str, plan["lengths"])), "--seed", seeds,
             *plan["flags"], *sized]
    finished = sweep_runs(NAME, flags, args)
    rows = [read_run(settings, d) for settings, d in finished]
    summary = summarise(rows, plan["models"], plan["lengths"])
    print_table(summary, plan["models"], plan["lengths"])
    first = json.loads((finished[0][1] / "summary.json").read_text())
    config = {k: v for k, v in first["config"].items() if k not in ("model", "length", "seed")}
    data = {"config": config, "varied": {"model": plan["models"], "length": plan["lengths"]},
            "seeds": sorted({r["seed"] for r in rows}), "sweep": ["gradlab", "sweep", "train", *flags],
            "interval": f"{CONFIDENCE:.0%} Student t over seeds", "summary": summary, "runs": rows,
            "versions": {"client": versions(), "worker": first["versions"]}}
    fig = figure(rows, summary, plan["models"], plan["lengths"])
    if args.sizes is not None:
        fig.axes[0].set_title(f"Digit-sum memory (NNDL 6.1, 6.3), train/dev/test {args.sizes.replace(',', '/')}")
    write_outputs(NAME, args.out, fig, data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
