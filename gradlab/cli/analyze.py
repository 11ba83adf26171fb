"""``gradlab analyze``: flags onto :class:`gradlab.analysis.pipeline.AnalyzeConfig`, run, write, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import (UsageError, check_device, check_out, finite_float, int_at_least, model_list,
                              positive_float)
from gradlab.models.regimes import INITS
from gradlab.tasks.problem import LOSS_AT
from gradlab.tasks import TASKS

DEFAULTS = {"model": ("lstm",), "length": 100, "hidden": 32, "layers": 1, "task": "digit-sum"}
FROM_CHECKPOINT = ("model", "hidden", "layers", "task")
REGIMES = {"init": "default", "gain": None, "forget_bias": None, "nonlinearity": "tanh"}


def add_parser(sub) -> None:
    a = sub.add_parser("analyze", help="record ∂L/∂h_t (and ∂L/∂c_t) at every step and show the decay",
                       description="Record the total gradient at every step of a model at initialisation on a "
                                   "batch of the NNDL digit-sum task (or another task, or a model trained by "
                                   "'gradlab train' with --checkpoint), fit its decay and write a run directory.")
    a.add_argument("--model", type=model_list, default=None, metavar="srn|lstm|gru",
                   help="model, or a comma list compared in one run and one figure (default: lstm)")
    a.add_argument("--len", dest="length", type=int_at_least(1), default=None, metavar="N",
                   help="sequence length (default: 100; with --checkpoint the length it was trained on)")
    a.add_argument("--hidden", type=int_at_least(1), default=None, metavar="H", help="hidden units (default: 32)")
    a.add_argument("--layers", type=int_at_least(1), default=None, metavar="K", help="stacked layers (default: 1)")
    a.add_argument("--task", choices=TASKS, default=None, help="the task whose batch is analysed (default: digit-sum)")
    a.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                   help="analyse the trained model of a 'gradlab train' run (its checkpoint.pt) on its task")
    a.add_argument("--data", dest="data_dir", type=Path, default=None, metavar="DIR",
                   help="where tasks read from files find them (mnist-rows: the idx files)")
    a.add_argument("--batch", type=int_at_least(1), default=32, metavar="B", help="batch size (default: 32)")
    a.add_argument("--seed", type=int_at_least(0), default=0, metavar="S", help="seed for data and weights (default: 0)")
    a.add_argument("--loss-at", choices=LOSS_AT, default="last",
                   help="the loss reads the last step or every step (default: last)")
    a.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="(default: float32)")
    a.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: cpu)")
    a.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="where the run directory is created; earlier runs are never overwritten (default: runs)")
    r = a.add_argument_group("regimes", "initialisations that make gradients vanish, stay or explode")
    r.add_argument("--init", choices=INITS, default="default",
                   help="shape of every H×H block of W_hh: torch's default, orthogonal, identity (IRNN, biases 0) "
                        "or normal N(0, 1/H); or nndl, the NNDL book's Xavier-uniform weights and single bias "
                        "(default: default)")
    r.add_argument("--gain", type=positive_float, default=None, metavar="G",
                   help="rescale every block of W_hh to spectral radius G")
    r.add_argument("--forget-bias", type=finite_float, default=None, metavar="B",
                   help="the LSTM's total forget-gate bias (LSTMs only)")
    r.add_argument("--nonlinearity", choices=("tanh", "relu", "linear"), default="tanh",
                   help="the SRN's nonlinearity (default: tanh)")
    r.add_argument("--zero-input", action="store_true", help="feed zeros instead of the embedded digits")
    a.add_argument("--quiet", action="store_true", help="no progress bar")


def _resolve(args: argparse.Namespace) -> None:
    """Fill the flags left unset: from the checkpoint when there is one, else the defaults."""
    if args.checkpoint is None:
        for key, value in DEFAULTS.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        return
    from gradlab.tasks.weights import load_checkpoint

    given = [f"--{k}" for k in FROM_CHECKPOINT if getattr(args, k) is not None]
    given += [f"--{k.replace('_', '-')}" for k, v in REGIMES.items() if getattr(args, k) != v]
    if given:
        raise UsageError(f"argument --checkpoint: {', '.join(given)} come(s) from the checkpoint; leave them out")
    try:
        _, cfg, _ = load_checkpoint(args.checkpoint)
    except (OSError, ValueError) as exc:
        raise UsageError(f"argument --checkpoint: {exc}") from None
    args.model, args.hidden, args.layers, args.task = (cfg["model"],), cfg["hidden"], cfg["layers"], cfg["task"]
    args.nonlinearity = cfg["nonlinearity"]
    args.length = args.length or cfg["length"]
    args.data_dir = args.data_dir or cfg.get("data_dir")


def run(args: argparse.Namespace) -> int:
    from gradlab.analysis.pipeline import AnalyzeConfig, analyze
    from gradlab.runs.console import format_report
    from gradlab.common.memory import keep_resident_memory_flat
    from gradlab.runs.analysis_run import write_run

    keep_resident_memory_flat()  # long runs: see gradlab/memory.py

    check_device(args.device)
    check_out(args.out)
    _resolve(args)
    if args.forget_bias is not None and "lstm" not in args.model:
        raise UsageError("argument --forget-bias: applies to the LSTM only; add lstm to --model")
    if args.nonlinearity != "tanh" and "srn" not in args.model:
        raise UsageError("argument --nonlinearity: applies to the SRN only; add srn to --model")
    task = TASKS[args.task]
    try:
        task.check_length(args.length)
    except ValueError as exc:
        raise UsageError(f"argument --len: {exc}") from None
    cfg = AnalyzeConfig(models=args.model, length=args.length, hidden=args.hidden, layers=args.layers,
                        batch=args.batch, seed=args.seed, loss_at=args.loss_at, dtype=args.dtype,
                        device=args.device, out=str(args.out), init=args.init, gain=args.gain,
                        forget_bias=args.forget_bias, nonlinearity=args.nonlinearity, zero_input=args.zero_input,
                        task=args.task, checkpoint=None if args.checkpoint is None else str(args.checkpoint),
                        data_dir=None if args.data_dir is None else str(args.data_dir))
    try:
        analysis = analyze(cfg, progress=not args.quiet)
    except (FileNotFoundError, ImportError) as exc:  # a task's data files or optional extra
        raise UsageError(f"argument --task: {exc}") from None
    run_dir = write_run(analysis)
    print(format_report(analysis, run_dir))
    return 0
