"""NNDL 6.2: gradient explosion in an SRN, and what per-parameter and global clipping do, over seeds.

The book's set-up: digit-sum at length 20, SRN with hidden 32 and the book's Xavier-uniform
initialisation, SGD lr 0.2, cross-entropy summed over the batch, batch 64, 50 epochs (250 steps). The L2
norms of the gradients of W (input weights), U (recurrent weights) and b are logged at every step
before clipping, without clipping, with per-parameter clipping at 5.0 (the book's Paddle
ClipGradByNorm) and, for comparison, with global-norm clipping at 5.0. Seed 0 trains on the book's
datasets; seed s draws datasets and weights from s. The runs go through ``gradlab sweep train`` into
--runs. Writes <out>/nndl_explosion.{png,pdf,json}: seed 0's norms (the book's figure), and over the
seeds the test accuracy with 95 % t intervals and how often, and from which step, every gradient is
exactly 0.

    python experiments/nndl_explosion.py           # 5 seeds: ~40 s on 2 cores
    python experiments/nndl_explosion.py --smoke   # seconds, for the test suite
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run, start, sweep_options, sweep_runs, write_outputs  # noqa: E402

from gradlab.common.versions import versions  # noqa: E402
from gradlab.plots.style import new_figure  # noqa: E402
from gradlab.plots.training import BOOK_NAMES, draw_gradient_norms  # noqa: E402
from gradlab.sweep.aggregate import CONFIDENCE, interval  # noqa: E402
from gradlab.tasks.digit_sum import TASK  # noqa: E402

NAME = "nndl_explosion"
BOOK = ("--model", "srn", "--task", "digit-sum", "--len", "20", "--hidden", "32", "--init", "nndl", "--epochs", "50",
        "--batch", "64", "--lr", "0.2", "--optimizer", "sgd", "--reduction", "sum", "--clip-norm", "5.0",
        "--eval-every", "100")
SMOKE = ("--model", "srn", "--task", "digit-sum", "--len", "5", "--hidden", "8", "--init", "nndl", "--steps", "3",
         "--batch", "64", "--lr", "0.2", "--optimizer", "sgd", "--reduction", "sum", "--clip-norm", "5.0",
         "--eval-every", "100")
MODES = {"none": "no clipping", "per-param": "per-parameter clipping at 5.0 (the book)",
         "global": "global-norm clipping at 5.0"}


def read_history(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def read_run(run_dir: Path) -> dict:
    """One run: its scores, loss and the book's three gradient norms per step, and the steps (1-based,
    as history.csv counts them) at which all three are exactly 0."""
    summary = json.loads((run_dir / "summary.json").read_text())
    history = read_history(run_dir / "history.csv")
    norms = {short: history[f"grad_norm/{p}"] for p, short in BOOK_NAMES.items()}
    zero = [int(s) for s, *ns in zip(history["step"], *norms.values()) if all(n == 0.0 for n in ns)]
    return {"test_accuracy": summary["test"]["value"], "best_step": summary["best_step"],
            "best_dev_accuracy": summary["best_dev"]["value"], "seconds": summary["seconds"],
            "loss": history["loss"], "grad_norms": norms, "steps_all_zero": len(zero),
            "first_all_zero_step": zero[0] if zero else None, "history": history, "versions": summary["versions"]}


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
    """Per mode over the seeds: test and best dev accuracy (95 % t interval), how many runs end above
    guessing, and how many have steps with every gradient exactly 0, from which step."""
    out = {}
    for mode, by_seed in runs.items():
        rs = list(by_seed.values())
        firsts = [r["first_all_zero_step"] for r in rs if r["first_all_zero_step"] is not None]
        out[mode] = {"seeds": len(rs), "test_accuracy": interval([r["test_accuracy"] for r in rs]),
                     "best_dev_accuracy": interval([r["best_dev_accuracy"] for r in rs]),
                     "runs_above_guessing": sum(r["test_accuracy"] > TASK.chance for r in rs),
                     "runs_with_all_zero_steps": len(firsts),
                     "first_all_zero_step": {"min": min(firsts, default=None), "max": max(firsts, default=None)},
                     "steps_all_zero": interval([r["steps_all_zero"] for r in rs])}
    return out


def _acc(c: dict) -> str:
    return f"{c['mean']:.3f}" if c["ci95_low"] is None else f"{c['mean']:.3f} [{c['ci95_low']:.3f}, {c['ci95_high']:.3f}]"


def main(argv=None) -> int:
    args = start(NAME, __doc__, argv, lambda p: sweep_options(p, NAME, "0-4"))
    seeds = "0-1" if args.smoke and args.seeds == "0-4" else args.seeds
    flags = ["--clip", ",".join(MODES), "--seed", seeds, *(SMOKE if args.smoke else BOOK)]
    runs: dict[str, dict[int, dict]] = {}
    dirs: dict[tuple[str, int], Path] = {}
    for settings, d in sweep_runs(NAME, flags, args):
        key = (settings["--clip"], int(settings["--seed"]))
        runs.setdefault(key[0], {})[key[1]], dirs[key] = read_run(d), d
    summary = summarise(runs)
    first_seed = min(next(iter(runs.values())))
    fig, axes = new_figure(ncols=len(MODES), width_per_panel=4.4, height=3.8)
    for ax, (mode, text) in zip(axes, MODES.items()):
        shown, s = runs[mode][first_seed], summary[mode]
        draw_gradient_norms(ax, shown["history"], color=None)
        ax.set_title(f"{text}\nseed {first_seed}: test accuracy {shown['test_accuracy']:.2f}; "
                     f"{s['seeds']} seeds: {s['test_accuracy']['mean']:.2f}", fontsize=9)
        ax.legend(loc="upper right", fontsize=7, ncol=2)
        print(f"{text:45s} test accuracy {_acc(s['test_accuracy'])} over {s['seeds']} seeds; all gradients "
              f"exactly 0 at some step in {s['runs_with_all_zero_steps']} of them")
    config = json.loads((dirs[(next(iter(MODES)), first_seed)] / "config.json").read_text())
    fig.suptitle(f"SRN gradient norms on digit-sum (T = {config['length']}), SGD lr {config['lr']:g}, summed loss "
                 f"(NNDL 6.2), seed {first_seed}")
    worker = shown["versions"]
    for by_seed in runs.values():
        for r in by_seed.values():
            del r["history"], r["versions"]
    config = {k: v for k, v in config.items() if k not in ("clip", "seed")}
    data = {"config": config, "sweep": ["gradlab", "sweep", "train", *flags],
            "parameters": {s: p for p, s in BOOK_NAMES.items()}, "interval": f"{CONFIDENCE:.0%} Student t over seeds",
            "summary": summary, "runs": {mode: {str(k): v for k, v in by_seed.items()} for mode, by_seed in runs.items()},
            "versions": {"worker": worker, "client": versions()},
            "note": "norms are taken before clipping; b is bias_ih (the book's single bias: bias_hh is frozen at 0); "
                    "steps count from 1 as history.csv does"}
    write_outputs(NAME, args.out, fig, data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
