"""``gradlab train``: flags onto :class:`gradlab.training.loop.TrainConfig`, train, write the run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import UsageError, check_device, check_out, int_at_least, positive_float, three_counts
from gradlab.training.clipping import CLIP_MODES
from gradlab.models.regimes import INITS
from gradlab.models.recurrent import MODEL_CLASSES
from gradlab.tasks.problem import LOSS_AT
from gradlab.tasks import TASKS



def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model on a task, logging gradient norms and decay through training",
                       description="Train an SRN, LSTM or GRU on a task. Logs each parameter's gradient norm at every "
                                   "step (before clipping), scores the dev set every --eval-every steps and keeps the "
                                   "best weights, records the gradient decay every --trace-every steps, and scores "
                                   "the test set at the end. Defaults are the NNDL book's digit-sum settings.")
    t.add_argument("--model", choices=MODEL_CLASSES, default="lstm", help="(default: lstm)")
    t.add_argument("--task", choices=TASKS, default="digit-sum", help="(default: digit-sum)")
    t.add_argument("--len", dest="length", type=int_at_least(1), default=None, metavar="N",
                   help="sequence length (default: 10; image tasks: their height; copy: 30)")
    t.add_argument("--hidden", type=int_at_least(1), default=32, metavar="H", help="(default: 32)")
    t.add_argument("--layers", type=int_at_least(1), default=1, metavar="K", help="(default: 1)")
    t.add_argument("--nonlinearity", choices=("tanh", "relu", "linear"), default="tanh", help="SRN only (default: tanh)")
    t.add_argument("--init", choices=INITS, default="default",
                   help="torch's default, 'nndl' (the book's Xavier-uniform, one bias) or a regime (default: default)")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int_at_least(1), default=500, metavar="E", help="(default: 500)")
    length.add_argument("--steps", type=int_at_least(1), default=None, metavar="N", help="train N steps instead")
    t.add_argument("--gain", type=positive_float, default=None, metavar="G",
                   help="rescale every block of W_hh to spectral radius G (as in gradlab analyze)")
    t.add_argument("--batch", type=int_at_least(1), default=8, metavar="B", help="(default: 8)")
    t.add_argument("--lr", type=positive_float, default=1e-3, metavar="LR", help="(default: 0.001)")
    t.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="(default: adam)")
    t.add_argument("--clip", choices=CLIP_MODES, default="none",
                   help="none, global (all gradients together) or per-param (each on its own, as Paddle's "
                        "ClipGradByNorm in the book) (default: none)")
    t.add_argument("--clip-norm", type=positive_float, default=5.0, metavar="C", help="(default: 5.0)")
    t.add_argument("--reduction", choices=("mean", "sum"), default="mean",
                   help="the loss over the batch: mean (book 6.1) or sum (book 6.2) (default: mean)")
    t.add_argument("--loss-at", choices=LOSS_AT, default="last", help="(default: last)")
    t.add_argument("--seed", type=int_at_least(0), default=0, metavar="S", help="(default: 0)")
    t.add_argument("--shuffle", action="store_true", help="shuffle the training set every epoch (the book does not)")
    t.add_argument("--eval-every", type=int_at_least(1), default=100, metavar="N", help="(default: 100)")
    t.add_argument("--trace-every", type=int_at_least(0), default=0, metavar="N",
                   help="record the gradient decay every N steps; 0: never (default: 0)")
    t.add_argument("--trace-batch", type=int_at_least(1), default=32, metavar="B",
                   help="dev examples the traces use (default: 32)")
    t.add_argument("--sizes", type=three_counts("1000,200,200"), default=None, metavar="TRAIN,DEV,TEST",
                   help="examples per split for generated tasks (default: the book's sets for digit-sum, else "
                        "10000,1000,1000)")
    t.add_argument("--data", dest="data_dir", type=Path, default=None, metavar="DIR",
                   help="read the data: digit-sum files written by 'gradlab data', or MNIST's idx files")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="(default: float32)")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default: cpu)")
    t.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="where the run directory is created; earlier runs are never overwritten (default: runs)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gradlab.training.loop import TrainConfig, load_data, train
    from gradlab.runs.training_run import write_train_run

    check_device(args.device)
    check_out(args.out)
    task = TASKS[args.task]
    length = args.length or task.fixed_length or task.default_length
    try:
        task.check_length(length)
    except ValueError as exc:
        raise UsageError(f"argument --len: {exc}") from None
    if args.nonlinearity != "tanh" and args.model != "srn":
        raise UsageError("argument --nonlinearity: applies to --model srn only")
    if args.sizes is not None and (task.load is not None or args.data_dir is not None):
        raise UsageError("argument --sizes: the data is read from files, whose sizes are fixed")
    if args.data_dir is not None and task.make is not None and task.name != "digit-sum":
        raise UsageError(f"argument --data: {task.name} is generated, not read from files")
    cfg = TrainConfig(model=args.model, task=args.task, length=length, hidden=args.hidden, layers=args.layers,
                      nonlinearity=args.nonlinearity, init=args.init, gain=args.gain, epochs=args.epochs, steps=args.steps,
                      batch=args.batch, lr=args.lr, optimizer=args.optimizer, clip=args.clip, clip_norm=args.clip_norm,
                      reduction=args.reduction, loss_at=args.loss_at, seed=args.seed, shuffle=args.shuffle,
                      eval_every=args.eval_every, trace_every=args.trace_every, trace_batch=args.trace_batch,
                      sizes=args.sizes, data_dir=None if args.data_dir is None else str(args.data_dir),
                      dtype=args.dtype, device=args.device)
    try:
        data = load_data(cfg)
    except (FileNotFoundError, ImportError, ValueError) as exc:  # missing files, optional extra, bad lines
        raise UsageError(f"argument --data: {exc}" if args.data_dir else f"argument --task: {exc}") from None
    if len(data["train"][1]) == 0 or data["train"][0].shape[1] != length:
        raise UsageError(f"argument --len: the data has sequences of {data['train'][0].shape[1]} steps, not {length}")
    result = train(cfg, data, progress=not args.quiet)
    run_dir = write_train_run(result, args.out)
    metric = result.test.metric
    if result.diverged:
        print(f"gradlab train: training stopped at {result.diverged}; the run keeps the best weights "
              f"before it. Try a smaller --lr, --clip global or per-param, or a smaller --gain.")
    print(f"gradlab train: {cfg.model} on {cfg.task} (T = {cfg.length}), {len(result.history.get('loss', []))} steps in "
          f"{result.seconds:.1f} s\n  best dev {metric} {result.best_dev.value:.4f} at step {result.best_step}; "
          f"test {metric} {result.test.value:.4f}{' (overflow)' if result.test.value == float('inf') else ''} (chance {result.chance:.4f})\n  run directory: {run_dir}\n"
          f"  analyse it: gradlab analyze --checkpoint {run_dir / 'checkpoint.pt'}")
    return 0
