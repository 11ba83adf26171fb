"""``gradlab watch-figures RUN_DIR``: draw a watch run directory's decay through training."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import UsageError, check_out
from gradlab.common.options import InvalidOption, path_text


def add_parser(sub) -> None:
    w = sub.add_parser("watch-figures", help="draw a gradlab.watch run directory's decay through training",
                       description="Read a run directory written by gradlab.watch(..., out=DIR) and draw, for every "
                                   "watched module, state, layer and direction, the decay curves coloured by training "
                                   "step and the training step × distance heatmap (PNG, PDF and a JSON sidecar each), "
                                   "into a fresh directory.")
    w.add_argument("run_dir", type=lambda v: Path(path_text(v)), metavar="RUN_DIR", help="the watch's run directory")
    w.add_argument("--out", type=lambda v: Path(path_text(v)), default=None, metavar="DIR",
                   help="where the figures' directory is created (default: RUN_DIR itself)")


def run(args: argparse.Namespace) -> int:
    from gradlab.runs.watch_figures import write_watch_figures

    out = args.out or args.run_dir
    if not args.run_dir.is_dir():
        raise UsageError(f"argument RUN_DIR: {str(args.run_dir)!r} is not a directory")
    check_out(out)
    try:
        final = write_watch_figures(args.run_dir, out)
    except (ValueError, InvalidOption) as exc:
        raise UsageError(f"argument RUN_DIR: {exc}") from None
    print(f"figures written to {final}/ ({len(list(final.iterdir()))} files)")
    return 0
