#!/usr/bin/env bash
# Regenerate every figure in figures/ with the commands of docs/results.md, in order (about 15 minutes
# on 2 cores). The digit-sum models nndl_memory.py trains are saved under $CHECKPOINTS and reused by the
# gates and decay-through-training scripts, as the committed figures were made.
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoints="${CHECKPOINTS:-runs/nndl_checkpoints}"
python experiments/decay_at_init.py --overwrite
python experiments/nndl_explosion.py --overwrite
python experiments/nndl_memory.py --jobs 2 --checkpoints "$checkpoints" --overwrite
python experiments/nndl_gates.py --checkpoint "$checkpoints/lstm-L10.pt" --overwrite
python experiments/decay_through_training.py --checkpoints "$checkpoints" --overwrite
