"""``gradlab verify``: the hand-derived backward pass against autograd, on random problems or a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import UsageError, int_at_least, positive_float


def add_parser(sub) -> None:
    v = sub.add_parser("verify", help="check the hand-derived backward pass against autograd (float64)",
                       description="Run gradlab.bptt() and torch.autograd on random problems, or on a saved "
                                   "'gradlab analyze' run, and print the largest absolute and relative error of "
                                   "every parameter gradient, dx, dh_t, dc_t and initial-state gradient. Exits 1 "
                                   "if any relative error exceeds the tolerance.")
    v.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a directory written by gradlab analyze")
    v.add_argument("--model", choices=("srn", "lstm", "gru", "all"), default="all", help="(default: all)")
    v.add_argument("--len", dest="length", type=int_at_least(1), default=20, metavar="N", help="(default: 20)")
    v.add_argument("--layers", type=int_at_least(1), default=2, metavar="K", help="(default: 2)")
    v.add_argument("--hidden", type=int_at_least(1), default=8, metavar="H", help="(default: 8)")
    v.add_argument("--batch", type=int_at_least(1), default=3, metavar="B", help="(default: 3)")
    v.add_argument("--seed", type=int_at_least(0), default=0, metavar="S", help="(default: 0)")
    v.add_argument("--tol", type=positive_float, default=1e-10, metavar="REL",
                   help="largest relative error accepted (default: 1e-10)")


def run(args: argparse.Namespace) -> int:
    from gradlab.analysis.verification import check_random, check_run, format_check

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


