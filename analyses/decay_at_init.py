"""Gradient decay at initialisation: SRN vs LSTM vs GRU on digit-sum (the README's figure).

Writes <out>/decay_at_init.png, .pdf and .json (data and configuration). Refuses to replace
existing files unless --overwrite is given.

    python analyses/decay_at_init.py            # T = 300, float32: the SRN underflows
    python analyses/decay_at_init.py --smoke    # seconds, for the test suite
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from gradlab.analyze import AnalyzeConfig, analyze
from gradlab.run_files import analysis_figure, summary
from gradlab.plots.style import save_figure
from gradlab.runs import atomic_write, write_json

NAME = "decay_at_init"
FULL = AnalyzeConfig(models=("srn", "lstm", "gru"), length=300, hidden=32, batch=32, seed=0, dtype="float32")
SMOKE = AnalyzeConfig(models=("srn", "lstm", "gru"), length=20, hidden=8, batch=4, seed=0, dtype="float32")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing figure files")
    args = p.parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    targets = [args.out / f"{NAME}.{ext}" for ext in ("png", "pdf", "json")]
    if not args.overwrite and any(t.exists() for t in targets):
        print(f"{NAME}: {args.out} already holds {NAME}.*; pass --overwrite to replace them", file=sys.stderr)
        return 2
    analysis = analyze(cfg, progress=not args.smoke)
    data = summary(analysis)
    data["profiles"] = {r.kind: {s: {k: v.tolist() for k, v in asdict(prof).items()} for s, prof in r.profiles.items()}
                        for r in analysis.results}
    atomic_write(targets[2], lambda p: write_json(p, data), overwrite=args.overwrite)
    save_figure(analysis_figure(analysis), args.out / NAME, overwrite=args.overwrite)
    for t in targets:
        print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
