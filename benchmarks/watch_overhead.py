"""What watching costs: a training loop of a 2-layer bidirectional LSTM (H = 128, T = 100, B = 32,
Adam) watched every N steps, against the same loop unwatched, in the same run.

Baseline: the unwatched loop (torch's fused nn.LSTM). Reported: the loop's time watched (no sink,
with the run-directory sink, with the TensorBoard sink and its figures) as a ratio to the baseline, and one recorded step alone as a ratio to
one unwatched step — with torch's backward (the default) and with ``backward="gradlab"`` (the recorded
sweep in place of torch's backward). Median of the repeats. ``--smoke`` runs tiny sizes for the test suite.

    python benchmarks/watch_overhead.py            # the sizes above, 2 threads
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

import gradlab


class Model(nn.Module):
    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(inputs, hidden, num_layers=2, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1]).pow(2).mean()


def loop(model, opt, batches) -> float:
    start = time.perf_counter()
    for x in batches:
        opt.zero_grad()
        model(x).backward()
        opt.step()
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    I, H, T, B, steps, every, repeats = (4, 8, 10, 4, 6, 3, 2) if args.smoke else (16, 128, 100, 32, 100, 100, 5)
    torch.set_num_threads(1 if args.smoke else 2)
    torch.manual_seed(0)
    model = Model(I, H)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [torch.randn(T, B, I) for _ in range(steps)]
    loop(model, opt, batches[:2])  # warm-up
    times = {"unwatched": [], "watched": [], "watched + run directory": [], "watched + TensorBoard": [],
             "recorded step": [], "recorded step, backward='gradlab'": [], "plain step": []}
    for _ in range(repeats):
        times["unwatched"].append(loop(model, opt, batches))
        with gradlab.watch(model, every=every):
            times["watched"].append(loop(model, opt, batches))
        with tempfile.TemporaryDirectory() as d, gradlab.watch(model, every=every, out=d):
            times["watched + run directory"].append(loop(model, opt, batches))
        with tempfile.TemporaryDirectory() as d, gradlab.watch(model, every=every, tensorboard=d):
            times["watched + TensorBoard"].append(loop(model, opt, batches))
        with gradlab.watch(model, every=1):
            times["recorded step"].append(loop(model, opt, batches[:1]))
        with gradlab.watch(model, every=1, backward="gradlab"):
            times["recorded step, backward='gradlab'"].append(loop(model, opt, batches[:1]))
        times["plain step"].append(loop(model, opt, batches[:1]))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); 2-layer bidirectional LSTM H={H}, T={T}, "
          f"B={B}, Adam; {steps} steps watched every {every}; median of {repeats}; baseline: the unwatched loop")
    print(f"{'loop':>26}  {'seconds':>8}  {'vs unwatched':>12}")
    for key in ("unwatched", "watched", "watched + run directory", "watched + TensorBoard"):
        print(f"{key:>26}  {med[key]:8.3f}  {med[key] / med['unwatched']:11.3f}x")
    for key, label in (("recorded step", "one recorded step"),
                       ("recorded step, backward='gradlab'", "  backward='gradlab'")):
        print(f"{label:>26}  {med[key]:8.3f}  {med[key] / med['plain step']:11.3f}x "
              f"(vs one unwatched step, {med['plain step']:.4f} s)")


if __name__ == "__main__":
    main()
