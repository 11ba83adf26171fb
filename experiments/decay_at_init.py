"""Gradient decay at initialisation: SRN vs LSTM vs GRU on digit-sum (the README's figure).

Writes <out>/decay_at_init.png, .pdf and .json (data and configuration). Refuses to replace
existing files unless --overwrite is given.

    python experiments/decay_at_init.py            # T = 300, float32: the SRN underflows
    python experiments/decay_at_init.py --smoke    # seconds, for the test suite
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run, start, write_outputs  # noqa: E402

from gradlab.analysis.pipeline import AnalyzeConfig, analyze  # noqa: E402
from gradlab.runs.analysis_run import analysis_figure, summary  # noqa: E402

NAME = "decay_at_init"
FULL = AnalyzeConfig(models=("srn", "lstm", "gru"), length=300, hidden=32, batch=32, seed=0, dtype="float32")
SMOKE = AnalyzeConfig(models=("srn", "lstm", "gru"), length=20, hidden=8, batch=4, seed=0, dtype="float32")


def main(argv=None) -> int:
    args = start(NAME, __doc__, argv)
    analysis = analyze(SMOKE if args.smoke else FULL, progress=not args.smoke)
    data = summary(analysis)
    data["profiles"] = {r.kind: {s: {k: v.tolist() for k, v in asdict(prof).items()} for s, prof in r.profiles.items()}
                        for r in analysis.results}
    write_outputs(NAME, args.out, analysis_figure(analysis), data, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(run(NAME, main))
