"""The engine against torch's fused forward + backward, in the same run: the Engine-speed issue's table.

Baseline: torch.nn.RNN / nn.LSTM / nn.GRU (input 8, hidden H, batch B) forward + backward with the
loss on the last step, fused kernels. Compared, each giving every step's total gradient:
  record()                    the default: one pass, log-domain sweep (plain and log10 norms);
  record(step)                the same, its carry rescaled at every step instead of in blocks;
  record(log_domain=False)    one pass, plain sweep;
  bptt(), bptt(log_domain=True)  the hand-derived pass with parameter and input gradients;
  checkpointed_norms()        gradlab analyze's √T-memory engine (norms only, log domain).
Threads as torch is told (--threads, default 2). Median of --repeats runs after one warm-up. Prints
milliseconds and ratios to the baseline. Not a test: timings depend on the machine.

    python benchmarks/engine_speed.py                        # T in 100, 1000; H = 128; B = 32
    python benchmarks/engine_speed.py --lengths 10000 --repeats 3
    python benchmarks/engine_speed.py --hidden 64 256
    python benchmarks/engine_speed.py --models lstm --lengths 10000 --repeats 1
    python benchmarks/engine_speed.py --block 1              # the log domain rescaling at every step
    python benchmarks/engine_speed.py --smoke                # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import gradlab
from gradlab.engine import logscale

TORCH_MODULES = {"srn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
COLUMNS = ("record()", "record(step)", "record(plain)", "bptt()", "bptt(log)", "checkpointed")


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def every_step(fn):
    """``fn()`` with the log-domain carry rescaled at every step (block 1), as before blocks."""
    block, logscale.BLOCK = logscale.BLOCK, 1
    try:
        return fn()
    finally:
        logscale.BLOCK = block


def bench(kind: str, T: int, B: int, H: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    fused = TORCH_MODULES[kind](8, H)
    model = gradlab.from_torch(fused)
    x = torch.randn(T, B, 8)
    grad_output = torch.zeros(T, B, H)
    grad_output[-1] = 1.0

    def fused_step():
        out, _ = fused(x)
        out[-1].sum().backward()

    def explicit(t0, t1, out):
        g = torch.zeros_like(out)
        if t1 == T:
            g[-1] = 1.0
        return g

    loss = lambda out: out[-1].sum()  # noqa: E731
    return {
        "torch": median_ms(fused_step, repeats),
        "record()": median_ms(lambda: gradlab.record(fused, x, loss, full=False), repeats),
        "record(step)": median_ms(lambda: every_step(lambda: gradlab.record(fused, x, loss, full=False)), repeats),
        "record(plain)": median_ms(lambda: gradlab.record(fused, x, loss, full=False, log_domain=False), repeats),
        "bptt()": median_ms(lambda: gradlab.bptt(model, x, grad_output), repeats),
        "bptt(log)": median_ms(lambda: gradlab.bptt(model, x, grad_output, log_domain=True), repeats),
        "checkpointed": median_ms(lambda: gradlab.checkpointed_norms(model, lambda t0, t1: x[t0:t1], explicit, T, B,
                                                                     progress=False), repeats),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--hidden", type=int, nargs="+", default=[128])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", nargs="+", choices=tuple(TORCH_MODULES), default=["lstm", "gru", "srn"])
    p.add_argument("--block", type=int, default=logscale.BLOCK,
                   help=f"steps the log-domain sweep runs between rescalings (default {logscale.BLOCK}; 1: every step)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logscale.BLOCK = args.block
    lengths, hidden, repeats = ((20,), (8,), 1) if args.smoke else (args.lengths, args.hidden, args.repeats)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"B = {args.batch}, input 8, loss on the last step; median of {repeats}; log-domain block {args.block}; "
          "baseline: torch fused forward + backward")
    print(f"{'model':5s} {'H':>4s} {'T':>6s} {'torch ms':>9s}  " + "  ".join(f"{c:>15s}" for c in COLUMNS))
    for kind in args.models:
        for H in hidden:
            for T in lengths:
                t = bench(kind, T, args.batch, H, repeats)
                base = t["torch"]
                cells = "  ".join(f"{t[c] / base:6.2f}x ({t[c]:5.0f})" for c in COLUMNS)
                print(f"{kind:5s} {H:4d} {T:6d} {base:9.1f}  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
