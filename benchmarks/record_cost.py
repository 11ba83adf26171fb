"""What recording every per-step gradient costs, against torch's fused nn.LSTM in the same run.

Baseline: torch.nn.LSTM forward + backward (fused kernels) on the same input and loss.
Compared: gradlab's LSTM forward + backward without hooks (the Python time loop), and
gradlab.record() (the loop plus a tensor hook and a norm at every step). Prints median wall times
over repeats and ratios to the baseline. Not a test: timings depend on the machine.

    python benchmarks/record_cost.py            # T in 100, 1000; H = 64; B = 32
    python benchmarks/record_cost.py --smoke    # one tiny size, for the test suite
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import gradlab


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(T: int, B: int, H: int, repeats: int) -> dict:
    torch.manual_seed(0)
    fused = torch.nn.LSTM(H, H)
    model = gradlab.from_torch(fused)
    x = torch.randn(T, B, H)

    def loss_of(output):
        return output[-1].pow(2).sum()

    def torch_fb():
        fused.zero_grad(set_to_none=True)
        loss_of(fused(x)[0]).backward()

    def gradlab_fb():
        model.zero_grad(set_to_none=True)
        loss_of(model(x)[0]).backward()

    def gradlab_record():
        gradlab.record(model, x, loss_of, full=False)

    base = median_time(torch_fb, repeats)
    loop = median_time(gradlab_fb, repeats)
    rec = median_time(gradlab_record, repeats)
    return {"T": T, "B": B, "H": H, "torch_s": base, "loop_s": loop, "record_s": rec}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    sizes = [(10, 2, 8)] if args.smoke else [(100, 32, 64), (1000, 32, 64)]
    repeats = 1 if args.smoke else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'T':>6} {'B':>4} {'H':>4}  {'nn.LSTM f+b':>12}  {'gradlab f+b':>12}  {'record()':>10}  "
          f"{'loop/torch':>10}  {'record/torch':>12}")
    for T, B, H in sizes:
        r = bench(T, B, H, repeats)
        print(f"{T:>6} {B:>4} {H:>4}  {r['torch_s'] * 1e3:>10.1f}ms  {r['loop_s'] * 1e3:>10.1f}ms  "
              f"{r['record_s'] * 1e3:>8.1f}ms  {r['loop_s'] / r['torch_s']:>10.2f}  {r['record_s'] / r['torch_s']:>12.2f}")


if __name__ == "__main__":
    main()
