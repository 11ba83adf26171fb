"""Layer 11, cli — the ``gradlab`` command line: flags onto config dataclasses; ``main(argv) -> exit code``.

One module per command (``add_parser(sub)``, ``run(args)``). Every invalid value ends with exit
status 2 and one line saying what is wrong and what is allowed; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from gradlab.cli import analyze, data, report, sweep, train, verify, watch_figures
from gradlab.cli.args import USAGE_ERROR, Parser, UsageError

COMMANDS = {"analyze": analyze, "train": train, "data": data, "verify": verify, "watch-figures": watch_figures,
            "report": report, "sweep": sweep}


def build_parser() -> argparse.ArgumentParser:
    from gradlab.common.versions import gradlab_version

    parser = Parser(prog="gradlab", description="See how far back a gradient reaches in SRNs, LSTMs and GRUs.")
    parser.add_argument("--version", action="version", version=f"gradlab {gradlab_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "sweep":  # only a sweep passes flags on (to the command it sweeps)
        parser.parse_args(argv)  # the usual one-line error
    args.flags = extra
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    try:
        return COMMANDS[args.command].run(args)
    except UsageError as exc:
        print(f"gradlab {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"gradlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
