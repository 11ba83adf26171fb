"""``gradlab sweep analyze|train FLAGS... --out DIR``: the command's flags, where a flag given several
values varies (a comma list, a range such as ``--seed 0-4``, ``;`` between the alternatives of a list
flag such as ``--sizes``); every combination runs as a task on Dask distributed."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import UsageError
from gradlab.common.options import path_text


def add_parser(sub) -> None:
    s = sub.add_parser("sweep", help="run analyze or train over seeds and settings on Dask, with confidence intervals",
                       description="Run 'gradlab analyze' or 'gradlab train' for every combination of the flags "
                                   "given several values (a comma list, a range like --seed 0-4, or ';' between "
                                   "the alternatives of a list flag like --sizes) as independent tasks on Dask "
                                   "distributed: a LocalCluster here (--workers), or an existing scheduler "
                                   "(--scheduler). Writes a run directory per task, sweep.csv (mean, standard "
                                   "deviation and 95%% interval over seeds per setting), sweep.json and figures "
                                   "into --out; run again on the same directory, it runs only what is missing.")
    s.add_argument("swept", choices=("analyze", "train"), metavar="analyze|train", help="the command swept")
    s.add_argument("--out", type=lambda v: Path(path_text(v)), required=True, metavar="DIR",
                   help="the sweep directory (created; the same command on it again resumes)")
    s.add_argument("--workers", type=int, default=2, metavar="N",
                   help="workers of the LocalCluster, one process each (default: 2); torch threads per worker: "
                        "cores // N")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler (e.g. tcp://host:8786) instead of a LocalCluster")
    s.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gradlab.sweep.run import run_sweep
    from gradlab.sweep.spec import SpecError

    if args.workers < 1:
        raise UsageError(f"argument --workers: expected an integer >= 1, got {args.workers}")
    try:
        outcome = run_sweep(args.swept, args.flags, args.out, args.workers, args.scheduler, progress=not args.quiet)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    total = outcome.ran + outcome.kept
    print(f"sweep: {total - len(outcome.failed)} of {total} runs finished ({outcome.ran} run now, {outcome.kept} kept) "
          f"in {outcome.directory}/")
    for name, reason in outcome.failed.items():
        print(f"  failed: {name}: {reason}")
    if outcome.failed:
        print(f"gradlab sweep: {len(outcome.failed)} task(s) failed; run the same command again to retry them")
        return 1
    return 0
