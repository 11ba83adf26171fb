"""``gradlab report [RUN_DIR ...] --out DIR``: saved runs into figures and one self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import UsageError, check_out
from gradlab.common.options import path_text


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="turn saved runs into figures and one self-contained HTML page",
                       description="Read run directories written by gradlab analyze, gradlab train and "
                                   "gradlab.watch(out=...) and write, into a fresh report directory, every figure "
                                   "(PNG, PDF and a JSON sidecar of the numbers drawn) and report.html, one page "
                                   "with the configurations, summary tables and the figures embedded. With no run "
                                   "given, the standard set (analyze runs of the SRN, LSTM and GRU; an SRN and an "
                                   "LSTM trained on digit-sum) is run first.")
    r.add_argument("runs", nargs="*", type=lambda v: Path(path_text(v)), metavar="RUN_DIR",
                   help="run directories of gradlab analyze, train or watch")
    r.add_argument("--out", type=lambda v: Path(path_text(v)), default=Path("reports"), metavar="DIR",
                   help="where the report directory is created; earlier reports are never overwritten "
                        "(default: reports)")
    r.add_argument("--quick", action="store_true", help="with no run given: a standard set of about a minute")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from gradlab.report.build import REPORT_PAGE, write_report
    from gradlab.report.sources import NotARun, read_run

    if args.quick and args.runs:
        raise UsageError("argument --quick: applies when no run is given (it sizes the standard set)")
    for path in args.runs:
        try:
            read_run(path)
        except NotARun as exc:
            raise UsageError(f"argument RUN_DIR: {exc}") from None
    check_out(args.out)
    final = write_report(args.runs, args.out, quick=args.quick, progress=not args.quiet)
    print(f"report written to {final / REPORT_PAGE} ({len(list(final.glob('*.png')))} figures)")
    return 0
