"""The ``gradlab`` command line: flags onto config dataclasses; ``main(argv) -> exit code``.

Every invalid value ends with exit status 2 and one line saying what is wrong and what is
allowed; no traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

from gradlab.init import INITS
from gradlab.models import MODEL_CLASSES
from gradlab.problem import LOSS_AT

USAGE_ERROR = 2


class UsageError(Exception):
    """A bad flag value found after parsing (e.g. CUDA asked for where there is none)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2, no usage block
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _model_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",")))
    bad = [n for n in names if n not in MODEL_CLASSES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model {', '.join(repr(b) for b in bad) or repr(text)}; choose from "
            f"{', '.join(MODEL_CLASSES)} or a comma list such as srn,lstm,gru")
    return names


def build_parser() -> argparse.ArgumentParser:
    from gradlab import __version__

    parser = _Parser(prog="gradlab", description="See how far back a gradient reaches in SRNs, LSTMs and GRUs.")
    parser.add_argument("--version", action="version", version=f"gradlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    a = sub.add_parser("analyze", help="record ∂L/∂h_t (and ∂L/∂c_t) at every step and show the decay",
                       description="Record the total gradient at every step of a model at initialisation on a "
                                   "batch of the NNDL digit-sum task, fit its decay and write a run directory.")
    a.add_argument("--model", type=_model_list, default=("lstm",), metavar="srn|lstm|gru",
                   help="model, or a comma list compared in one run and one figure (default: lstm)")
    a.add_argument("--len", dest="length", type=_int_at_least(1), default=100, metavar="N",
                   help="sequence length (default: 100)")
    a.add_argument("--hidden", type=_int_at_least(1), default=32, metavar="H", help="hidden units (default: 32)")
    a.add_argument("--layers", type=_int_at_least(1), default=1, metavar="K", help="stacked layers (default: 1)")
    a.add_argument("--batch", type=_int_at_least(1), default=32, metavar="B", help="batch size (default: 32)")
    a.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S", help="seed for data and weights (default: 0)")
    a.add_argument("--loss-at", choices=LOSS_AT, default="last",
                   help="the loss reads the last step or every step (default: last)")
    a.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="(default: float32)")
    a.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: cpu)")
    a.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="where the run directory is created; earlier runs are never overwritten (default: runs)")
    r = a.add_argument_group("regimes", "initialisations that make gradients vanish, stay or explode")
    r.add_argument("--init", choices=INITS, default="default",
                   help="shape of every H×H block of W_hh: torch's default, orthogonal, identity (IRNN, biases 0) "
                        "or normal N(0, 1/H) (default: default)")
    r.add_argument("--gain", type=_positive_float, default=None, metavar="G",
                   help="rescale every block of W_hh to spectral radius G")
    r.add_argument("--forget-bias", type=_finite_float, default=None, metavar="B",
                   help="the LSTM's total forget-gate bias (LSTMs only)")
    r.add_argument("--nonlinearity", choices=("tanh", "relu", "linear"), default="tanh",
                   help="the SRN's nonlinearity (default: tanh)")
    r.add_argument("--zero-input", action="store_true", help="feed zeros instead of the embedded digits")
    a.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser("verify", help="check the hand-derived backward pass against autograd (float64)",
                       description="Run gradlab.bptt() and torch.autograd on random problems, or on a saved "
                                   "'gradlab analyze' run, and print the largest absolute and relative error of "
                                   "every parameter gradient, dx, dh_t, dc_t and initial-state gradient. Exits 1 "
                                   "if any relative error exceeds the tolerance.")
    v.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a directory written by gradlab analyze")
    v.add_argument("--model", choices=("srn", "lstm", "gru", "all"), default="all", help="(default: all)")
    v.add_argument("--len", dest="length", type=_int_at_least(1), default=20, metavar="N", help="(default: 20)")
    v.add_argument("--layers", type=_int_at_least(1), default=2, metavar="K", help="(default: 2)")
    v.add_argument("--hidden", type=_int_at_least(1), default=8, metavar="H", help="(default: 8)")
    v.add_argument("--batch", type=_int_at_least(1), default=3, metavar="B", help="(default: 3)")
    v.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S", help="(default: 0)")
    v.add_argument("--tol", type=_positive_float, default=1e-10, metavar="REL",
                   help="largest relative error accepted (default: 1e-10)")
    return parser


def _number(text: str, positive: bool) -> float:
    what = "a positive number" if positive else "a finite number"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    return _number(text, positive=False)


def _positive_float(text: str) -> float:
    return _number(text, positive=True)


def _check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: cuda is not available here (torch {torch.__version__}); use --device cpu")


def _check_out(out: Path) -> None:
    from gradlab.runs import check_writable

    try:
        check_writable(out)
    except OSError as exc:
        raise UsageError(f"argument --out: cannot write runs under {str(out)!r}: {exc.strerror or exc}") from None


def run_analyze(args: argparse.Namespace) -> int:
    from gradlab.analyze import AnalyzeConfig, analyze
    from gradlab.run_files import write_run
    from gradlab.console import format_report
    from gradlab.memory import keep_resident_memory_flat

    keep_resident_memory_flat()  # long runs: see gradlab/memory.py

    _check_device(args.device)
    _check_out(args.out)
    if args.forget_bias is not None and "lstm" not in args.model:
        raise UsageError("argument --forget-bias: applies to the LSTM only; add lstm to --model")
    if args.nonlinearity != "tanh" and "srn" not in args.model:
        raise UsageError("argument --nonlinearity: applies to the SRN only; add srn to --model")
    cfg = AnalyzeConfig(models=args.model, length=args.length, hidden=args.hidden, layers=args.layers,
                        batch=args.batch, seed=args.seed, loss_at=args.loss_at, dtype=args.dtype,
                        device=args.device, out=str(args.out), init=args.init, gain=args.gain,
                        forget_bias=args.forget_bias, nonlinearity=args.nonlinearity, zero_input=args.zero_input)
    analysis = analyze(cfg, progress=not args.quiet)
    run_dir = write_run(analysis)
    print(format_report(analysis, run_dir))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from gradlab.verify import check_random, check_run, format_check

    if args.run_dir is not None:
        missing = [f for f in ("summary.json", "models.pt", "batch.pt") if not (args.run_dir / f).is_file()]
        if missing:
            raise UsageError(f"argument RUN_DIR: {str(args.run_dir)!r} is not a gradlab analyze run "
                             f"(missing {', '.join(missing)})")
        checks = check_run(args.run_dir)
    else:
        models = ["srn", "lstm", "gru"] if args.model == "all" else [args.model]
        checks = check_random(models, args.length, args.layers, args.hidden, args.batch, args.seed)
    failed = []
    for check in checks:
        print(format_check(check, args.tol), flush=True)
        if check.worst() > args.tol:
            failed.append(check.label)
    if failed:
        print(f"FAILED: relative error above {args.tol:g} in {', '.join(failed)}")
        return 1
    print(f"all quantities agree with autograd to a relative error <= {args.tol:g}")
    return 0


COMMANDS = {"analyze": run_analyze, "verify": run_verify}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"gradlab {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"gradlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
