"""`gradlab train` at the NNDL book's digit-sum settings: torch's fused module (what it trains now)
against gradlab's unrolled model (what it trained before), in the same run.

Both are ``gradlab.train(TrainConfig(...))`` with the book's settings (hidden 32, batch 8, Adam lr
1e-3, its 1000/200/200 examples), ``--steps`` steps with the dev set scored every 100, and one
intra-op thread, as experiments/nndl_memory.py runs its jobs. Baseline: ``train(cfg, fused=False)``,
the unrolled model's path, which is what the landed version ran. Prints the median wall time of
whole training runs and the ratio. Not a test: timings depend on the machine.

    python benchmarks/train_command.py            # T in 10, 35; 500 steps; median of 3
    python benchmarks/train_command.py --smoke    # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from gradlab.training.loop import TrainConfig, load_data, train


def seconds(cfg: TrainConfig, data, fused: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train(cfg, data, progress=False, fused=fused)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--steps", type=int, default=500)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lengths, steps, repeats = ((5,), 3, 1) if args.smoke else ((10, 35), args.steps, 3)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; digit-sum, hidden 32, "
          f"batch 8, Adam lr 1e-3; {steps} steps, dev every 100; median of {repeats} runs; "
          "baseline: gradlab's unrolled model (train(fused=False))")
    print(f"{'model':5s} {'T':>3s}  {'unrolled (before)':>18s}  {'fused (now)':>12s}  {'ratio':>6s}")
    for kind in ("srn", "lstm", "gru"):
        for T in lengths:
            cfg = TrainConfig(model=kind, length=T, steps=steps, eval_every=100).resolved()
            data = load_data(cfg)
            before = seconds(cfg, data, False, repeats)
            now = seconds(cfg, data, True, repeats)
            print(f"{kind:5s} {T:3d}  {before:16.2f} s  {now:10.2f} s  {now / before:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
