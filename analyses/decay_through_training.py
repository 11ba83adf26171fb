"""How training changes how far back the gradient reaches: ‖∂L/∂h_t‖ against distance at
initialisation and after training, SRN vs LSTM vs GRU.

Left: digit-sum at length 20 with the book's settings (Embedding(10, 32), hidden 32, the book's
Xavier-uniform init, Adam lr 1e-3, batch 8, no shuffling) for 100 epochs (3,800 steps). Right: the
adding problem at T = 1000 in the manner of Arjovsky et al. 2016 (their Fig. 4: hidden 128, batch
20): at initialisation and after 100 Adam iterations (lr 1e-3; Arjovsky et al. used RMSProp). Each
curve is log10 of the batch-mean norm on a fixed batch of dev examples (32 for digit-sum, 20 for
adding), from the log-domain backward pass, so it goes on past float32's underflow. Writes
<out>/decay_through_training.{png,pdf,json}.

    python analyses/decay_through_training.py           # ~15 min on 2 cores
    python analyses/decay_through_training.py --smoke   # seconds, for the test suite
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse, refuse_overwrite, write_outputs  # noqa: E402

from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, log10_axis_powers_of_ten, new_figure  # noqa: E402
from gradlab.train import TrainConfig, train  # noqa: E402

NAME = "decay_through_training"
MODELS = ("srn", "lstm", "gru")
DIGIT_SUM = TrainConfig(task="digit-sum", length=20, hidden=32, init="nndl", epochs=100, batch=8, lr=1e-3,
                        optimizer="adam", seed=0, eval_every=100, trace_batch=32)
ADDING = TrainConfig(task="adding", length=1000, hidden=128, steps=100, batch=20, lr=1e-3, optimizer="adam",
                     seed=0, eval_every=100, trace_batch=20, sizes=(2000, 100, 100))
SMOKE = {"digit-sum": replace(DIGIT_SUM, length=6, hidden=8, steps=4),
         "adding": replace(ADDING, length=30, hidden=8, steps=4, sizes=(80, 20, 20))}


def main(argv=None) -> int:
    args = parse(__doc__, argv)
    if refuse_overwrite(NAME, args.out, args.overwrite):
        return 2
    plans = SMOKE if args.smoke else {"digit-sum": DIGIT_SUM, "adding": ADDING}
    fig, axes = new_figure(ncols=2, width_per_panel=5.2, height=4.0)
    data = {"configs": {k: asdict(v) for k, v in plans.items()}, "runs": {}}
    for ax, (task, base) in zip(axes, plans.items()):
        for model in MODELS:
            cfg = replace(base, model=model, trace_every=base.steps or 10 ** 9)  # traces at step 0 and the end
            result = train(cfg, progress=not args.smoke)
            first, last = result.traces[0], result.traces[-1]
            for trace, style, when in ((first, "--", "init"), (last, "-", f"step {last['step']}")):
                values = np.asarray(trace["profile"]["h"])
                ax.plot(np.arange(len(values)), values, style, color=MODEL_COLORS[model], lw=1.3,
                        label=f"{MODEL_LABELS[model]}, {when}")
            data["runs"][f"{task}/{model}"] = {
                "steps": len(result.history["loss"]), "test": asdict(result.test), "chance": result.chance,
                "log10_mean_grad_h": {str(tr["step"]): tr["profile"]["h"] for tr in (first, last)}}
            print(f"{task:9s} {model:4s} test {result.test.metric} {result.test.value:.3f}  "
                  f"log10 ‖∂L/∂h‖ at the far end: init {first['profile']['h'][-1]:.1f}, "
                  f"trained {last['profile']['h'][-1]:.1f}")
        log10_axis_powers_of_ten(ax)
        ax.set(xlabel="distance from the last step, T − 1 − t (steps)", ylabel=r"mean $\|\partial L/\partial h_t\|$",
               title=f"{task}, T = {base.length}, H = {base.hidden}: dashed at init, solid trained")
        ax.legend(fontsize=7, ncol=3 if len(MODELS) > 2 else 2, loc="lower left")
    write_outputs(NAME, args.out, fig, data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
