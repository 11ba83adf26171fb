"""NNDL 6.1/6.3: SRN vs LSTM test accuracy on digit-sum against sequence length, book settings.

For each model and length L = 10, 15, …, 35: the book's datasets (generated as the book does),
Embedding(10, 32), hidden 32, the book's Xavier-uniform initialisation, Adam lr 1e-3, batch 8, no
shuffling, 500 epochs, seed 0, dev accuracy every 100 steps, the best dev checkpoint scored on the
test set. Writes <out>/nndl_memory.{png,pdf,json} and prints the table.

    python experiments/nndl_memory.py --jobs 2     # ~20 min on 2 cores
    python experiments/nndl_memory.py --smoke      # seconds, for the test suite
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import positive_int, run, start, write_outputs  # noqa: E402

from gradlab.tasks.weights import save_checkpoint  # noqa: E402
from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, new_figure  # noqa: E402
from gradlab.tasks.digit_sum import TASK  # noqa: E402
from gradlab.training.loop import TrainConfig, train  # noqa: E402

NAME = "nndl_memory"
BOOK = TrainConfig(task="digit-sum", hidden=32, init="nndl", epochs=500, batch=8, lr=1e-3, optimizer="adam",
                   seed=0, eval_every=100)
FULL = {"models": ("srn", "lstm"), "lengths": (10, 15, 20, 25, 30, 35), "config": BOOK}
SMOKE = {"models": ("srn", "lstm"), "lengths": (5, 10),
         "config": TrainConfig(task="digit-sum", hidden=8, init="nndl", epochs=1, batch=8, eval_every=20)}


def run_one(cfg: TrainConfig, checkpoints: Path | None) -> dict:
    torch.set_num_threads(1)  # one process per core is faster than threads for these small models
    result = train(cfg, progress=False)
    if checkpoints is not None:
        save_checkpoint(checkpoints / f"{cfg.model}-L{cfg.length}.pt", result.problem, asdict(cfg),
                        {"step": result.best_step, "dev_accuracy": result.best_dev.value}, overwrite=True)
    return {"model": cfg.model, "length": cfg.length, "test_accuracy": result.test.value,
            "best_dev_accuracy": result.best_dev.value, "best_step": result.best_step,
            "steps": len(result.history["loss"]), "seconds": result.seconds, "evals": result.evals}


def figure(rows: list[dict], models, lengths):
    fig, (ax,) = new_figure()
    for model in models:
        mine = sorted((r["length"], r["test_accuracy"]) for r in rows if r["model"] == model)
        ax.plot(*zip(*mine), "o-", color=MODEL_COLORS[model], label=MODEL_LABELS[model])
    ax.axhline(TASK.chance, color="0.5", ls=":", label="always guessing 9 (0.10)")
    ax.set(xlabel="sequence length L (steps)", ylabel="test accuracy (best dev checkpoint)", ylim=(0, 1.02),
           xticks=list(lengths), title="Digit-sum memory (NNDL 6.1, 6.3)")
    ax.legend()
    return fig


def main(argv=None) -> int:
    def extra(p):
        p.add_argument("--jobs", type=positive_int, default=1, help="training runs in parallel (one per core)")
        p.add_argument("--checkpoints", type=Path, default=None, help="also save each trained model here")
    args = start(NAME, __doc__, argv, extra)
    plan = SMOKE if args.smoke else FULL
    if args.checkpoints is not None:
        args.checkpoints.mkdir(parents=True, exist_ok=True)
    configs = [replace(plan["config"], model=m, length=L) for m in plan["models"] for L in plan["lengths"]]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, cfg, args.checkpoints) for cfg in configs]
        rows = [f.result() for f in tqdm(futures, desc=NAME, unit="run", disable=args.smoke)]
    print("| L | " + " | ".join(MODEL_LABELS[m] for m in plan["models"]) + " |")
    print("|---|" + "---|" * len(plan["models"]))
    for L in plan["lengths"]:
        accs = [next(r["test_accuracy"] for r in rows if r["model"] == m and r["length"] == L) for m in plan["models"]]
        print(f"| {L} | " + " | ".join(f"{a:.2f}" for a in accs) + " |")
    data = {"config": asdict(plan["config"]), "models": plan["models"], "lengths": plan["lengths"],
            "torch_threads_per_run": 1, "runs": rows}
    write_outputs(NAME, args.out, figure(rows, plan["models"], plan["lengths"]), data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
