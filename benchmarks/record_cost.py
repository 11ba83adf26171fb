"""What recording every per-step gradient costs, against torch's fused modules in the same run.

Baseline: torch.nn.RNN / nn.LSTM / nn.GRU forward + backward (fused kernels), same input and loss.
Compared, each recording the total gradient of every step:
  record(): its defaults (full=False here): the engine's forward with its tape and one log-domain
            backward sweep per layer, giving the plain and the log10 norms (gradlab/engine/record.py);
  bptt():   the hand-derived backward pass in the plain domain, with the parameter gradients.
Also shown: gradlab's unrolled model forward + backward under autograd (its Python time loop, the
path a model with hook points trains on). benchmarks/engine_speed.py has the Engine-speed issue's
full table (more sizes and the checkpointed engine).
Prints median wall times over repeats and ratios to the baseline. Not a test: timings depend on
the machine.

    python benchmarks/record_cost.py            # T in 100, 1000; H = 64; B = 32; all models
    python benchmarks/record_cost.py --smoke    # one tiny size, for the test suite
"""

from __future__ import annotations

import argparse
import platform
import statistics
import timeit

import torch

import gradlab

TORCH_MODULES = {"srn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after 1 warm-up call (GC on)."""
    timeit.repeat(fn, setup="gc.enable()", number=1, repeat=1)
    return statistics.median(timeit.repeat(fn, setup="gc.enable()", number=1, repeat=repeats))


def bench(kind: str, T: int, B: int, H: int, repeats: int) -> dict:
    torch.manual_seed(0)
    fused = TORCH_MODULES[kind](H, H)
    model = gradlab.from_torch(fused)
    x = torch.randn(T, B, H)
    grad_output = torch.zeros(T, B, H)
    grad_output[-1] = 1.0  # the loss reads the last step

    def loss_of(output):
        return (output * grad_output).sum()

    def torch_fb():
        fused.zero_grad(set_to_none=True)
        loss_of(fused(x)[0]).backward()

    def loop_fb():
        model.zero_grad(set_to_none=True)
        loss_of(model(x)[0]).backward()

    return {
        "torch": median_time(torch_fb, repeats),
        "loop": median_time(loop_fb, repeats),
        "record": median_time(lambda: gradlab.record(model, x, loss_of, full=False), repeats),
        "bptt": median_time(lambda: gradlab.bptt(model, x, grad_output), repeats),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    sizes = [(10, 2, 8)] if args.smoke else [(100, 32, 64), (1000, 32, 64)]
    repeats = 1 if args.smoke else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
          f"median of {repeats}; ratios are time / torch fused forward+backward")
    print(f"{'model':>5} {'T':>5} {'B':>3} {'H':>3}  {'torch f+b':>10} {'loop f+b':>9} {'record()':>9} "
          f"{'bptt()':>8}   {'loop':>5} {'record':>6} {'bptt':>5}")
    for kind in TORCH_MODULES:
        for T, B, H in sizes:
            r = bench(kind, T, B, H, repeats)
            ms = {k: f"{v * 1e3:.1f}ms" for k, v in r.items()}
            print(f"{kind:>5} {T:>5} {B:>3} {H:>3}  {ms['torch']:>10} {ms['loop']:>9} {ms['record']:>9} "
                  f"{ms['bptt']:>8}   {r['loop'] / r['torch']:>5.2f} {r['record'] / r['torch']:>6.2f} "
                  f"{r['bptt'] / r['torch']:>5.2f}")


if __name__ == "__main__":
    main()
