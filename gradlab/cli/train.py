"""``gradlab train``: flags onto :class:`gradlab.TrainConfig`, train, write the run directory."""

from __future__ import annotations

import argparse

from gradlab.cli.args import UsageError, add_config_options, check_device, check_out, config_from_args, usage_error
from gradlab.common.options import InvalidOption
from gradlab.training.loop import TrainConfig


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model on a task, logging gradient norms and decay through training",
                       description="Train an SRN, LSTM or GRU on a task. Logs each parameter's gradient norm at every "
                                   "step (before clipping), scores the dev set every --eval-every steps and keeps the "
                                   "best weights, records the gradient decay every --trace-every steps, and scores "
                                   "the test set at the end. Defaults are the NNDL book's digit-sum settings.")
    add_config_options(t, TrainConfig)
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gradlab.runs.training_run import write_train_run
    from gradlab.training.loop import load_data, train

    if hasattr(args, "clip_norm") and getattr(args, "clip", "none") == "none":  # a flag that would do nothing
        raise UsageError("argument --clip-norm: applies with --clip global or --clip per-param (no clipping is the default)")
    try:
        cfg = config_from_args(TrainConfig, args).resolved()
        check_device(cfg.device)
        check_out(cfg.out)
        data = load_data(cfg)
    except InvalidOption as exc:
        raise usage_error(TrainConfig, exc) from None
    if cfg.nonlinearity == "linear":  # said once, before the work starts
        print("gradlab train: torch's nn.RNN has no linear nonlinearity; the linear SRN trains as gradlab's unrolled "
              "model (slower than torch's fused kernels)")
    result = train(cfg, data, progress=not args.quiet)
    run_dir = write_train_run(result)
    metric = result.test.metric
    if result.diverged:
        print(f"gradlab train: training stopped at {result.diverged}; the run keeps the best weights "
              f"before it. Try a smaller --lr, --clip global or per-param, or a smaller --gain.")
    overflow = " (overflow)" if result.test.value == float("inf") else ""
    print(f"gradlab train: {cfg.model} on {cfg.task} (T = {cfg.length}), {len(result.history.get('loss', []))} steps in "
          f"{result.seconds:.1f} s as {result.engine}\n  best dev {metric} {result.best_dev.value:.4f} at step {result.best_step}; "
          f"test {metric} {result.test.value:.4f}{overflow} (chance {result.chance:.4f})\n  run directory: {run_dir}\n"
          f"  analyse it: gradlab analyze --checkpoint {run_dir / 'checkpoint.pt'}")
    return 0
