"""What every experiments/ script shares: its flags, the refusal to overwrite, and writing the
figure (PNG, PDF) with its JSON sidecar whole or not at all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradlab.common.files import atomic_write, save_figure, write_json

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def start(name: str, doc: str, argv=None, extra=None) -> argparse.Namespace:
    """Parse the flags (``extra(parser)`` adds a script's own) and stop with status 2 when ``--out``
    already holds ``name``.* and --overwrite was not given."""
    args = parse(doc, argv, extra)
    if refuse_overwrite(name, args.out, args.overwrite):
        raise SystemExit(2)
    return args


def parse(doc: str, argv=None, extra=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
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


def refuse_overwrite(name: str, out: Path, overwrite: bool) -> bool:
    """True (after saying why) when ``out`` already holds ``name``.* and --overwrite was not given."""
    out.mkdir(parents=True, exist_ok=True)
    if not overwrite and any((out / f"{name}.{ext}").exists() for ext in ("png", "pdf", "json")):
        print(f"{name}: {out} already holds {name}.*; pass --overwrite to replace them", file=sys.stderr)
        return True
    return False


def write_outputs(name: str, out: Path, fig, data: dict, overwrite: bool) -> None:
    json_path = atomic_write(out / f"{name}.json", lambda p: write_json(p, data), overwrite=overwrite)
    for path in (*save_figure(fig, out / name, overwrite=overwrite), json_path):
        print(path)
