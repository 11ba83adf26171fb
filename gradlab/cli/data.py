"""``gradlab data digit-sum``: write the NNDL digit-sum datasets in the book's layout and format."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradlab.cli.args import UsageError
from gradlab.common.options import counts, int_at_least, path_text


def _lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of lengths >= 3 such as 5,10,15, got {text!r}") from None
    if not values or min(values) < 3 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct lengths >= 3 such as 5,10,15, got {text!r}")
    return values



def add_parser(sub) -> None:
    from gradlab.tasks.digit_sum import BOOK_LENGTHS, BOOK_SEED, BOOK_SPLITS

    d = sub.add_parser("data", help="write task datasets to text files (the NNDL digit-sum layout)",
                       description="Write DIR/{L}/{train,dev,test}.txt, one line 'd1 d2 … dL<TAB>label' per example, "
                                   "generated as the NNDL book does (6.1.1). With the defaults (or --book) the "
                                   "files are the book's, example for example. 'gradlab train --data DIR' reads them.")
    d.add_argument("task", choices=("digit-sum",), help="the task (digit-sum)")
    d.add_argument("--out", type=lambda v: Path(path_text(v)), required=True, metavar="DIR", help="the dataset root")
    d.add_argument("--book", action="store_true",
                   help="the book's datasets exactly (this is also what the defaults give; excludes the flags below)")
    book_lengths = ",".join(map(str, BOOK_LENGTHS))
    d.add_argument("--lengths", type=_lengths, default=None, metavar="L1,L2,…",
                   help=f"lengths, generated in this order from one stream (default: {book_lengths})")
    d.add_argument("--seed", type=int_at_least(0), default=None, metavar="S", help=f"(default: {BOOK_SEED})")
    d.add_argument("--copies", type=counts(3, "3,1,1", "train,dev,test"), default=None, metavar="TRAIN,DEV,TEST",
                   help="noisy copies of each of the 100 (n1, n2) pairs per split (default: "
                        f"{','.join(map(str, BOOK_SPLITS.values()))}, i.e. 300/100/100 examples)")
    d.add_argument("--overwrite", action="store_true", help="replace files that are already there")


def run(args: argparse.Namespace) -> int:
    from gradlab.common.files import atomic_write
    from gradlab.tasks.digit_sum import BOOK_LENGTHS, BOOK_SEED, BOOK_SPLITS, book_datasets, format_lines

    chosen = [f for f, v in (("--lengths", args.lengths), ("--seed", args.seed), ("--copies", args.copies)) if v is not None]
    if args.book and chosen:
        raise UsageError(f"argument --book: the book fixes {', '.join(chosen)}; drop them or drop --book")
    lengths = args.lengths or BOOK_LENGTHS
    seed = BOOK_SEED if args.seed is None else args.seed
    splits = BOOK_SPLITS if args.copies is None else dict(zip(BOOK_SPLITS, args.copies))
    targets = [args.out / str(L) / f"{s}.txt" for L in lengths for s in splits]
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"argument --out: {str(args.out)!r} is a file, not a directory")
    taken = [t for t in targets if t.exists()]
    if taken and not args.overwrite:
        raise UsageError(f"argument --out: {taken[0]} already exists ({len(taken)} of {len(targets)} files); "
                         "pass --overwrite to replace them")
    data = book_datasets(lengths, seed, splits)
    try:
        for L in lengths:
            (args.out / str(L)).mkdir(parents=True, exist_ok=True)
            for s in splits:
                atomic_write(args.out / str(L) / f"{s}.txt",
                             lambda p, d=data[L][s]: p.write_text(format_lines(d), encoding="utf-8"), overwrite=True)
    except OSError as exc:
        raise UsageError(f"argument --out: cannot write under {str(args.out)!r}: {exc.strerror or exc}") from None
    sizes = "/".join(str(100 * k) for k in splits.values())
    print(f"wrote {len(targets)} files under {args.out}: lengths {','.join(map(str, lengths))}, "
          f"{sizes} examples per length (train/dev/test), seed {seed}" + (" — the NNDL book's datasets" if
                                                                          (lengths, seed, splits) == (BOOK_LENGTHS, BOOK_SEED, BOOK_SPLITS) else ""))
    return 0
