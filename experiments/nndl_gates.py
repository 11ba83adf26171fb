"""NNDL 6.3.3.3: the trained LSTM's input, forget and output gates and cell state, step by step.

Trains the length-10 LSTM with the book's settings (or loads one with --checkpoint), feeds it the
book's example [6, 7, 0, 0, 1, 0, 0, 0, 0, 0] (label 13) and draws four heatmaps, hidden unit × step
with the digits as x labels: input, forget and output gate (0 … 1) and cell state (−5 … 5).
Writes <out>/nndl_gates.{png,pdf,json}.

    python experiments/nndl_gates.py                                   # trains: ~2 min on 2 cores
    python experiments/nndl_gates.py --checkpoint runs/nndl_memory/runs/model=lstm_len=10_seed=0
    python experiments/nndl_gates.py --smoke                           # seconds, for the test suite
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import seaborn as sns
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ScriptError, run, start, write_outputs  # noqa: E402

import gradlab  # noqa: E402
from gradlab.tasks.weights import load_checkpoint  # noqa: E402
from gradlab.plots.style import new_figure  # noqa: E402
from gradlab.training.loop import TrainConfig, train  # noqa: E402

NAME = "nndl_gates"
BOOK_INPUT = [6, 7, 0, 0, 1, 0, 0, 0, 0, 0]
BOOK = TrainConfig(model="lstm", task="digit-sum", length=10, hidden=32, init="nndl", epochs=500, batch=8, lr=1e-3,
                   optimizer="adam", seed=0, eval_every=100)
SMOKE = replace(BOOK, hidden=8, epochs=None, steps=5)
PANELS = (("input gate $i_t$", "i", (0, 1), "rocket"), ("forget gate $f_t$", "f", (0, 1), "rocket"),
          ("output gate $o_t$", "o", (0, 1), "rocket"), ("cell state $c_t$", "c", (-5, 5), "vlag"))


@torch.no_grad()
def gate_states(problem, digits: list[int]) -> dict[str, np.ndarray]:
    """The top layer's gates i, f, o and cell state c on one sequence, each [H, T]."""
    x = problem.embed(torch.tensor([digits]))  # [T, 1, 32]
    tapes = gradlab.tapes(problem.model, x)
    i, f, _, o = tapes[-1].gates[:, 0].chunk(4, dim=-1)  # each [T, H]
    c = tapes[-1].c[1:, 0]
    return {name: v.T.cpu().numpy() for name, v in (("i", i), ("f", f), ("o", o), ("c", c))}


def main(argv=None) -> int:
    def extra(p):
        p.add_argument("--checkpoint", type=Path, default=None,
                       help="a trained length-10 digit-sum LSTM: a gradlab train run directory (nndl_memory.py's "
                            "runs are ones) or its checkpoint.pt")
    def check(args):
        if args.checkpoint is not None and not args.checkpoint.exists():
            return f"argument --checkpoint: no such file or directory: {args.checkpoint}"
        return None
    args = start(NAME, __doc__, argv, extra, check)
    if args.checkpoint is not None:
        try:
            problem, config, info = load_checkpoint(args.checkpoint)
        except (OSError, ValueError) as exc:
            raise ScriptError(f"argument --checkpoint: {exc}") from None
        if config["model"] != "lstm" or config["task"] != "digit-sum":
            raise ScriptError(f"argument --checkpoint: {args.checkpoint} holds a {config['model']} on "
                              f"{config['task']}, not a digit-sum LSTM")
        source = {"checkpoint": str(args.checkpoint), "config": config, "info": info}
    else:
        cfg = SMOKE if args.smoke else BOOK
        result = train(cfg, progress=not args.smoke)
        problem = result.problem
        source = {"config": asdict(cfg), "best_step": result.best_step, "test_accuracy": result.test.value}
    problem.eval()
    states = gate_states(problem, BOOK_INPUT)
    logits = problem.readout(problem(torch.tensor([BOOK_INPUT]))[-1])
    predicted = int(logits.argmax())
    fig, axes = new_figure(ncols=4, width_per_panel=3.6, height=4.2)
    for ax, (title, key, (lo, hi), cmap) in zip(axes, PANELS):
        sns.heatmap(states[key], ax=ax, vmin=lo, vmax=hi, cmap=cmap, xticklabels=BOOK_INPUT,
                    yticklabels=4, cbar_kws={"shrink": 0.8})
        ax.set(title=title, xlabel="input digit at step t", ylabel="hidden unit")
    fig.suptitle(f"Trained LSTM (T = 10) on {BOOK_INPUT}: label 13, predicted {predicted} (NNDL 6.3.3.3)")
    print(f"prediction on {BOOK_INPUT}: {predicted} (label 13)")
    data = {"input": BOOK_INPUT, "label": 13, "predicted": predicted, "model": source,
            **{key: states[key].tolist() for key in states}, "layout": "each state is [hidden unit][step]"}
    write_outputs(NAME, args.out, fig, data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
