"""How training changes how far back the gradient reaches: ‖∂L/∂h_t‖ against distance at
initialisation and after training, SRN vs LSTM vs GRU.

Left: digit-sum at length 20 with the book's settings (Embedding(10, 32), hidden 32, the book's
Xavier-uniform init, Adam lr 1e-3, batch 8, no shuffling, 500 epochs = 19,000 steps, the best dev
weights). Models that nndl_memory.py already trained with exactly these settings (seed 0) are loaded
from its --runs sweep directory (pass it as --checkpoints) instead of being trained again. Right: the
adding problem at T = 1000 in the manner of Arjovsky et al. 2016 (their Fig. 4: hidden 128, batch
20): at initialisation and after 100 Adam iterations (lr 1e-3; Arjovsky et al. used RMSProp). Each
curve is log10 of the batch-mean norm on a fixed batch of dev examples (32 for digit-sum, 20 for
adding), from the log-domain backward pass, so it goes on past float32's underflow. Writes
<out>/decay_through_training.{png,pdf,json}.

    python experiments/decay_through_training.py --checkpoints runs/nndl_memory   # ~7 min
    python experiments/decay_through_training.py --smoke   # seconds, for the test suite
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run, start, write_outputs  # noqa: E402

from gradlab.tasks.weights import CHECKPOINT_FILE, load_checkpoint  # noqa: E402
from gradlab.plots.style import MODEL_COLORS, MODEL_LABELS, log10_axis_powers_of_ten, new_figure  # noqa: E402
from gradlab.training.scoring import score  # noqa: E402
from gradlab.tasks import TASKS  # noqa: E402
from gradlab.training.loop import TrainConfig, gradient_profile, load_data, make_problem, train  # noqa: E402

TRACE_FIELDS = ("trace_every", "trace_batch")  # do not change what is trained

NAME = "decay_through_training"
MODELS = ("srn", "lstm", "gru")
DIGIT_SUM = TrainConfig(task="digit-sum", length=20, hidden=32, init="nndl", epochs=500, batch=8, lr=1e-3,
                        optimizer="adam", seed=0, eval_every=100, trace_batch=32)
ADDING = TrainConfig(task="adding", length=1000, hidden=128, steps=100, batch=20, lr=1e-3, optimizer="adam",
                     seed=0, eval_every=100, trace_batch=20, sizes=(2000, 100, 100))
# digit-sum: the configuration nndl_memory.py --smoke trains at length 10, so its checkpoints are reused
SMOKE = {"digit-sum": replace(DIGIT_SUM, length=10, hidden=8, epochs=1, eval_every=20),
         "adding": replace(ADDING, length=30, hidden=8, steps=4, sizes=(80, 20, 20))}


def reusable(cfg: TrainConfig, folder: Path | None) -> Path | None:
    """The checkpoint of exactly this training run among the gradlab train run directories under
    ``folder`` (nndl_memory.py's --runs sweep directory), if there is one."""
    if folder is None:
        return None
    wanted = {k: v for k, v in asdict(cfg).items() if k not in TRACE_FIELDS}
    for config in sorted(folder.rglob("config.json")):
        checkpoint = config.parent / CHECKPOINT_FILE
        saved = json.loads(config.read_text())
        if checkpoint.is_file() and all(saved.get(k) == v for k, v in wanted.items()):
            return checkpoint
    return None


def before_and_after(cfg: TrainConfig, folder: Path | None, progress: bool) -> dict:
    """log10 mean ‖∂L/∂h_t‖ profiles at initialisation and after training, and the test score."""
    path = reusable(cfg, folder)
    data = load_data(cfg)
    if path is None:
        trained, source = train(cfg, data, progress=progress).problem, "trained here"
    else:
        trained, _, info = load_checkpoint(path)
        source = f"{path} (best dev step {info['step']})"
    # either way the trained curve is that of the best dev weights, on the same dev examples
    n = min(cfg.trace_batch, len(data["dev"][1]))
    trace_set = (data["dev"][0][:n], data["dev"][1][:n])
    return {"init": gradient_profile(make_problem(cfg), trace_set, cfg.loss_at)["h"],
            "trained": gradient_profile(trained, trace_set, cfg.loss_at)["h"],
            "steps": cfg.total_steps(len(data["train"][1])), "test": score(trained.eval(), data["test"]),
            "chance": TASKS[cfg.task].chance, "source": source}


def figure(data: dict):
    """One panel per task: each model's curve at initialisation (dashed) and trained (solid)."""
    fig, axes = new_figure(ncols=len(data["configs"]), width_per_panel=5.2, height=4.2)
    for ax, (task, cfg) in zip(axes, data["configs"].items()):
        for model in MODELS:
            run = data["runs"][f"{task}/{model}"]
            for key, style, when in (("init", "--", "init"), ("trained", "-", f"trained, {run['steps']} steps")):
                values = np.asarray(run["log10_mean_grad_h"][key])
                ax.plot(np.arange(len(values)), values, style, color=MODEL_COLORS[model], lw=1.3,
                        label=f"{MODEL_LABELS[model]}, {when}")
        log10_axis_powers_of_ten(ax)
        ax.set(xlabel="distance from the last step, T − 1 − t (steps)", ylabel=r"mean $\|\partial L/\partial h_t\|$",
               title=f"{task}, T = {cfg['length']}, H = {cfg['hidden']}")
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle(r"$\|\partial L/\partial h_t\|$ at initialisation (dashed) and after training (solid)")
    return fig


def main(argv=None) -> int:
    def extra(p):
        p.add_argument("--checkpoints", type=Path, default=None,
                       help="nndl_memory.py's --runs directory: reuse its digit-sum models (seed 0)")
    def check(args):
        if args.checkpoints is not None and not args.checkpoints.is_dir():
            return f"argument --checkpoints: {args.checkpoints} is not a directory (nndl_memory.py --runs DIR writes one)"
        return None
    args = start(NAME, __doc__, argv, extra, check)
    plans = SMOKE if args.smoke else {"digit-sum": DIGIT_SUM, "adding": ADDING}
    data = {"configs": {k: asdict(v) for k, v in plans.items()}, "runs": {}}
    for task, base in plans.items():
        for model in MODELS:
            cfg = replace(base, model=model, trace_every=base.steps or 10 ** 9)  # traces at step 0 and the end
            run = before_and_after(cfg, args.checkpoints, progress=not args.smoke)
            curves = {"init": run.pop("init"), "trained": run.pop("trained")}
            data["runs"][f"{task}/{model}"] = {**run, "test": asdict(run["test"]), "log10_mean_grad_h": curves}
            print(f"{task:9s} {model:4s} test {run['test'].metric} {run['test'].value:.3f}  log10 ‖∂L/∂h‖ at the "
                  f"far end: init {curves['init'][-1]:.1f}, trained {curves['trained'][-1]:.1f}")
    fig = figure(data)
    write_outputs(NAME, args.out, fig, data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
