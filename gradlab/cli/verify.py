"""``gradlab verify``: the hand-derived backward pass against autograd, on random problems or a run."""

from __future__ import annotations

import argparse

from gradlab.analysis.verification import VerifyConfig
from gradlab.cli.args import add_config_options, config_from_args, usage_error
from gradlab.common.options import InvalidOption


def add_parser(sub) -> None:
    v = sub.add_parser("verify", help="check the hand-derived backward pass against autograd (float64)",
                       description="Run gradlab.bptt() and torch.autograd on random problems, or on a saved "
                                   "'gradlab analyze' run, and print the largest absolute and relative error of "
                                   "every parameter gradient, dx, dh_t, dc_t and initial-state gradient. Exits 1 "
                                   "if any relative error exceeds the tolerance.")
    add_config_options(v, VerifyConfig)


def run(args: argparse.Namespace) -> int:
    from gradlab.analysis.verification import format_check, verify

    try:
        cfg = config_from_args(VerifyConfig, args)
        checks = verify(cfg)
    except InvalidOption as exc:
        raise usage_error(VerifyConfig, exc) from None
    failed = []
    for check in checks:
        print(format_check(check, cfg.tol), flush=True)
        if check.worst() > cfg.tol:
            failed.append(check.label)
    if failed:
        print(f"FAILED: relative error above {cfg.tol:g} in {', '.join(failed)}")
        return 1
    print(f"all quantities agree with autograd to a relative error <= {cfg.tol:g}")
    return 0
