"""What every experiments/ script shares: its flags, checked before anything runs; the refusal to
overwrite; Ctrl-C ending with exit status 130 and one line; and the figure (PNG, PDF) with its
JSON sidecar written as one set, whole or not at all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from gradlab.cli.args import Parser
from gradlab.common.files import atomic_write_set, figure_writers, write_json

FIGURES = Path(__file__).resolve().parent.parent / "figures"

#: A script's own check of its parsed flags: the words saying what is wrong, or None.
Check = Callable[[argparse.Namespace], Optional[str]]


class ScriptError(Exception):
    """A bad flag value or input file: the script stops with status 2 and this one line."""


def start(name: str, doc: str, argv=None, extra=None, check: Optional[Check] = None) -> argparse.Namespace:
    """Parse the flags (``extra(parser)`` adds a script's own), check them (``--out`` must be a
    directory or absent; ``check(args)`` the script's own), then stop with status 2 when ``--out``
    already holds ``name``.* and --overwrite was not given."""
    args = parse(doc, argv, extra, prog=name)
    if args.out.exists() and not args.out.is_dir():
        raise ScriptError(f"argument --out: {args.out} is not a directory")
    problem = None if check is None else check(args)
    if problem is not None:
        raise ScriptError(problem)
    if refuse_overwrite(name, args.out, args.overwrite):
        raise SystemExit(2)
    return args


def parse(doc: str, argv=None, extra=None, prog: Optional[str] = None) -> argparse.Namespace:
    first_paragraph = " ".join(doc.split("\n\n")[0].split())
    p = Parser(prog=prog, description=first_paragraph)  # a bad flag: one line, status 2
    p.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds")
    p.add_argument("--out", type=Path, default=FIGURES, help=f"where the files go (default: {FIGURES})")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.smoke:  # tiny models: one thread beats two fighting over a busy CI machine's cores
        import torch

        torch.set_num_threads(1)
    return args


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {n}")
    return n


def sweep_options(p: argparse.ArgumentParser, name: str, seeds: str) -> None:
    """The flags of a script whose runs go through ``gradlab sweep``: --seeds, --workers, --scheduler
    and --runs (the sweep directory; run again on it, the finished runs are kept)."""
    p.add_argument("--seeds", default=seeds, metavar="SEEDS",
                   help=f"seeds per setting: a range such as 0-4 or a comma list (default: {seeds})")
    p.add_argument("--workers", type=positive_int, default=2, help="local Dask workers, one process each (default: 2)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="an existing Dask scheduler instead")
    p.add_argument("--runs", type=Path, default=None, metavar="DIR",
                   help=f"the sweep directory: one run directory per task (default: runs/{name}, "
                        f"runs/{name}-smoke with --smoke); the same command again keeps its finished runs")


def sweep_runs(name: str, flags: Sequence[str], args: argparse.Namespace) -> list[tuple[dict, Path]]:
    """Run ``gradlab sweep train FLAGS`` into ``args.runs`` and return (settings, run directory) of
    every task, the settings as {flag: value}. A bad flag is a ScriptError; failed tasks too, after
    the sweep has run all the others (the command run again retries only those)."""
    from gradlab.sweep.run import RUNS, run_sweep
    from gradlab.sweep.spec import SpecError, tasks_of

    runs = args.runs or Path("runs") / (f"{name}-smoke" if args.smoke else name)
    try:
        outcome = run_sweep("train", flags, runs, args.workers, args.scheduler, progress=not args.smoke)
    except SpecError as exc:
        raise ScriptError(str(exc)) from None
    if outcome.failed:
        reasons = "; ".join(f"{task}: {why}" for task, why in outcome.failed.items())
        raise ScriptError(f"{len(outcome.failed)} of {outcome.ran + outcome.kept} runs failed ({reasons}); "
                          f"run the same command again to retry them")
    print(f"{name}: {outcome.ran} runs now, {outcome.kept} kept, in {runs}/")
    return [(dict(t.settings), runs / RUNS / t.name) for t in tasks_of(flags)]


def refuse_overwrite(name: str, out: Path, overwrite: bool) -> bool:
    """True (after saying why) when ``out`` already holds ``name``.* and --overwrite was not given."""
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and any((out / f"{name}.{ext}").exists() for ext in ("png", "pdf", "json")):
        print(f"{name}: {out} already holds {name}.*; pass --overwrite to replace them", file=sys.stderr)
        return True
    return False


def write_outputs(name: str, out: Path, fig, data: dict, overwrite: bool) -> None:
    """``name``.png, .pdf and .json under ``out``, the three appearing together or not at all."""
    writers = {**figure_writers(fig, out / name), out / f"{name}.json": lambda p: write_json(p, data)}
    for path in atomic_write_set(writers, overwrite=overwrite):
        print(path)


def run(name: str, main: Callable[[], int]) -> int:
    """``main()``'s exit status; a ScriptError is one line and status 2, Ctrl-C one line and 130."""
    try:
        return main()
    except ScriptError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no partial figure set was written", file=sys.stderr)
        return 130
