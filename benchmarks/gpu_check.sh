#!/usr/bin/env bash
# The Engine-speed issue's device checks in one run, for a machine with a CUDA GPU and a CUDA build of
# torch (README, "On a GPU machine"): the CUDA tests, then the GPU engine table — (B, H) = (32, 128),
# (64, 512), (256, 1024), T = 1000, TF32 off, synchronised, against cuDNN's fused forward + backward.
# Writes gpu_tests.txt and gpu_engine.txt into $OUT (default: the current directory). About 5 minutes.
#
#     bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here')"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu_engine.txt"
python -m pytest -q -rs -k "cuda" tests 2>&1 | tee "$out/gpu_tests.txt"
python benchmarks/engine_speed.py --device cuda --sizes 32,128 64,512 256,1024 --lengths 1000 --repeats 5 \
    | tee -a "$out/gpu_engine.txt"
