"""What one training step costs with gradlab's models, against torch's fused modules in the same run.

A step is the NNDL digit-sum step of `gradlab train`: embedding → model → readout on the last
state, cross-entropy, backward, Adam. Baseline: the same step with the recurrent model swapped for
torch.nn.RNN / nn.LSTM / nn.GRU (fused kernels), same weights. Compared: gradlab's hand-written model
under autograd (what `gradlab train` runs, so that traces and hook points work on the trained
model), with and without the per-parameter gradient-norm log. The book's sizes: hidden 32, batch 8;
T = 10 and 35 (the shortest and longest lengths trained). One intra-op thread, as nndl_memory.py runs.
Prints median wall times and ratios to the baseline. Not a test: timings depend on the machine.

    python benchmarks/training_step.py            # T in 10, 35
    python benchmarks/training_step.py --smoke    # one tiny size, for the test suite
"""

from __future__ import annotations

import argparse
import platform
import statistics
import timeit

import numpy as np
import torch
import torch.nn.functional as F

from gradlab.training.clipping import gradient_norms
from gradlab.models.convert import to_torch
from gradlab.tasks.problem import build_problem
from gradlab.tasks.digit_sum import sample_batch


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after 3 warm-up calls (GC on)."""
    timeit.repeat(fn, setup="gc.enable()", number=1, repeat=3)
    return statistics.median(timeit.repeat(fn, setup="gc.enable()", number=1, repeat=repeats))


def step_fn(problem, recurrent, digits, labels, log_norms: bool):
    params = [p for p in problem.parameters() if p.requires_grad]
    if recurrent is not problem.model:
        params = [p for p in params if not any(p is q for q in problem.model.parameters())] + list(recurrent.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    named = list(problem.named_parameters())

    def step():
        optimizer.zero_grad(set_to_none=True)
        output, _ = recurrent(problem.encode(digits))
        loss = F.cross_entropy(problem.readout(output[-1]), labels)
        loss.backward()
        if log_norms:
            gradient_norms(named)
        optimizer.step()
    return step


def bench(kind: str, T: int, repeats: int) -> dict:
    digits, labels = (torch.as_tensor(a) for a in sample_batch(T, 8, np.random.default_rng(0)))
    problem = build_problem(kind, 32, 1, seed=0)
    fused = to_torch(problem.model)
    times = {
        "torch fused": median_time(step_fn(problem, fused, digits, labels, False), repeats),
        "gradlab": median_time(step_fn(problem, problem.model, digits, labels, False), repeats),
        "gradlab + norm log": median_time(step_fn(problem, problem.model, digits, labels, True), repeats),
    }
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    lengths, repeats = ((5,), 3) if args.smoke else ((10, 35), 200)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; "
          f"hidden 32, batch 8, Adam; median of {repeats} steps; baseline: torch fused nn.RNN/LSTM/GRU")
    print(f"{'model':5s} {'T':>3s}  {'torch fused':>12s}  {'gradlab':>16s}  {'gradlab + norm log':>20s}")
    for kind in ("srn", "lstm", "gru"):
        for T in lengths:
            t = bench(kind, T, repeats)
            base = t["torch fused"]
            print(f"{kind:5s} {T:3d}  {base * 1e3:9.2f} ms  {t['gradlab'] * 1e3:7.2f} ms ({t['gradlab'] / base:4.2f}x)"
                  f"  {t['gradlab + norm log'] * 1e3:7.2f} ms ({t['gradlab + norm log'] / base:4.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
