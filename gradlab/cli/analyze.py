"""``gradlab analyze``: flags onto :class:`gradlab.AnalyzeConfig`, run, write, report."""

from __future__ import annotations

import argparse

from gradlab.analysis.pipeline import AnalyzeConfig
from gradlab.cli.args import add_config_options, check_device, check_out, config_from_args, usage_error
from gradlab.common.options import InvalidOption


def add_parser(sub) -> None:
    a = sub.add_parser("analyze", help="record ∂L/∂h_t (and ∂L/∂c_t) at every step and show the decay",
                       description="Record the total gradient at every step of a model at initialisation on a "
                                   "batch of the NNDL digit-sum task (or another task, or a model trained by "
                                   "'gradlab train' with --checkpoint), fit its decay and write a run directory.")
    add_config_options(a, AnalyzeConfig)
    a.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gradlab.analysis.pipeline import analyze
    from gradlab.common.memory import keep_resident_memory_flat
    from gradlab.runs.analysis_run import write_run
    from gradlab.runs.console import format_report

    keep_resident_memory_flat()  # long runs: see gradlab/common/memory.py
    try:
        cfg = config_from_args(AnalyzeConfig, args).resolved()
    except InvalidOption as exc:
        raise usage_error(AnalyzeConfig, exc) from None
    check_device(cfg.device)
    check_out(cfg.out)
    try:
        analysis = analyze(cfg, progress=not args.quiet)
    except (FileNotFoundError, ImportError) as exc:  # a task's data files or optional extra
        raise usage_error(AnalyzeConfig, InvalidOption(str(exc), "data_dir" if cfg.data_dir else "task")) from None
    run_dir = write_run(analysis)
    print(format_report(analysis, run_dir))
    return 0
