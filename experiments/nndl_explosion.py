"""NNDL 6.2: gradient explosion in an SRN, and what per-parameter and global clipping do.

The book's set-up: digit-sum at length 20 (the book's datasets), SRN with hidden 32 and the book's
Xavier-uniform initialisation, SGD lr 0.2, cross-entropy summed over the batch, batch 64, 50 epochs
(250 steps), seed 0. The L2 norms of the gradients of W (input weights), U (recurrent weights) and b
are logged at every step before clipping, without clipping, with per-parameter clipping at 5.0 (the
book's Paddle ClipGradByNorm) and, for comparison, with global-norm clipping at 5.0. Writes
<out>/nndl_explosion.{png,pdf,json}.

    python experiments/nndl_explosion.py           # ~1 min on 2 cores
    python experiments/nndl_explosion.py --smoke   # seconds, for the test suite
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run, start, write_outputs  # noqa: E402

from gradlab.plots.style import new_figure  # noqa: E402
from gradlab.plots.training import BOOK_NAMES, draw_gradient_norms  # noqa: E402
from gradlab.common.versions import versions  # noqa: E402
from gradlab.training.loop import TrainConfig, train  # noqa: E402

NAME = "nndl_explosion"
BOOK = TrainConfig(model="srn", task="digit-sum", length=20, hidden=32, init="nndl", epochs=50, batch=64, lr=0.2,
                   optimizer="sgd", reduction="sum", clip_norm=5.0, seed=0, eval_every=100)
SMOKE = replace(BOOK, length=5, hidden=8, epochs=None, steps=3)
MODES = {"none": "no clipping", "per-param": "per-parameter clipping at 5.0 (the book)",
         "global": "global-norm clipping at 5.0"}


def main(argv=None) -> int:
    args = start(NAME, __doc__, argv)
    base = SMOKE if args.smoke else BOOK
    fig, axes = new_figure(ncols=len(MODES), width_per_panel=4.4, height=3.6)
    runs = {}
    for ax, (mode, text) in zip(axes, MODES.items()):
        result = train(replace(base, clip=mode), progress=not args.smoke)
        history = result.history
        runs[mode] = {"test_accuracy": result.test.value, "best_step": result.best_step,
                      "best_dev_accuracy": result.best_dev.value, "seconds": result.seconds,
                      "loss": history["loss"],
                      "grad_norms": {short: history[f"grad_norm/{p}"] for p, short in BOOK_NAMES.items()}}
        draw_gradient_norms(ax, history, color=None)
        ax.set_title(f"{text}\ntest accuracy {result.test.value:.2f}")
        ax.legend(loc="upper right", fontsize=7, ncol=2)
        print(f"{text:45s} test accuracy {result.test.value:.3f}")
    fig.suptitle(f"SRN gradient norms on digit-sum (T = {base.length}), SGD lr {base.lr:g}, summed loss (NNDL 6.2)")
    data = {"config": asdict(base), "versions": versions(), "parameters": {s: p for p, s in BOOK_NAMES.items()}, "runs": runs,
            "note": "norms are taken before clipping; b is bias_ih (the book's single bias: bias_hh is frozen at 0)"}
    write_outputs(NAME, args.out, fig, data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
