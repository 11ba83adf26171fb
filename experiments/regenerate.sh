#!/usr/bin/env bash
# Regenerate every figure in figures/ with the commands of docs/results.md, in order (about 45 minutes
# on 2 cores, most of it nndl_memory.py's 60 training runs). The sweeps' run directories go under
# $RUNS (default runs/); nndl_memory's seed-0 digit-sum models are reused by the gates and
# decay-through-training scripts, as the committed figures were made. A sweep directory that already
# holds finished runs of the same sweep keeps them; give a fresh $RUNS to train everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-runs}"
python experiments/decay_at_init.py --overwrite
python experiments/nndl_explosion.py --runs "$runs/nndl_explosion" --overwrite
python experiments/nndl_memory.py --runs "$runs/nndl_memory" --overwrite
python experiments/nndl_gates.py --checkpoint "$runs/nndl_memory/runs/model=lstm_len=10_seed=0" --overwrite
python experiments/decay_through_training.py --checkpoints "$runs/nndl_memory" --overwrite
