"""Time and peak memory of the checkpointed log-domain backward pass against sequence length.

Each length runs in a fresh Python process (so its peak resident memory is its own): an LSTM with
H = 64, B = 4, input size 32, a synthetic input drawn segment by segment, loss on the last step, as
`gradlab analyze --model lstm --hidden 64 --batch 4` runs it. Prints seconds per step, the ratio of
each per-step time to the one at T = 10^4 (target: within 1.3× at 10^6), and peak memory (target:
under 1 GiB at 10^6).

    python benchmarks/long_sequences.py                 # T = 10^3 … 10^6 (about 15 minutes here)
    python benchmarks/long_sequences.py --max-len 100000
    python benchmarks/long_sequences.py --smoke         # T = 100, 1000, for the test suite
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
import gradlab
from gradlab.engine.checkpointed import checkpointed_norms
from gradlab.common.memory import keep_resident_memory_flat

keep_resident_memory_flat()
T, B, H, I = int(sys.argv[1]), 4, 64, 32
torch.manual_seed(0)
model = gradlab.LSTM(I, H)

def inputs(t0, t1):
    g = torch.Generator().manual_seed(t0)
    return torch.randn(t1 - t0, B, I, generator=g)

def explicit(t0, t1, out):
    g = torch.zeros_like(out)
    if t1 == T:
        g[-1] = 1.0
    return g

start = time.perf_counter()
res = checkpointed_norms(model, inputs, explicit, T, B, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"T": T, "seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "log10_grad_c_at_t0": float(res.log10_grad_norms("c", 0)[0].mean())}))
"""


def run_length(T: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(T)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--max-len", type=int, default=10**6)
    args = p.parse_args(argv)
    lengths = [100, 1000] if args.smoke else [T for T in (10**3, 10**4, 10**5, 10**6) if T <= args.max_len]
    rows = [run_length(T) for T in lengths]
    base = next((r for r in rows if r["T"] == 10**4), rows[0])
    base_per_step = base["seconds"] / base["T"]
    print(f"torch {__import__('torch').__version__}; LSTM H=64 B=4; checkpointed log-domain BPTT; "
          f"baseline: per-step time at T={base['T']}")
    print(f"{'T':>9} {'seconds':>9} {'µs/step':>8} {'vs base':>8} {'peak MiB':>9} {'log10‖∂L/∂c_0‖':>15}")
    for r in rows:
        per_step = r["seconds"] / r["T"]
        print(f"{r['T']:>9} {r['seconds']:>9.1f} {per_step * 1e6:>8.0f} {per_step / base_per_step:>8.2f} "
              f"{r['peak_rss_mib']:>9.0f} {r['log10_grad_c_at_t0']:>15.1f}")


if __name__ == "__main__":
    main()
