"""The engine against torch's fused forward + backward, in the same run: the Engine-speed issue's table.

Baseline: torch.nn.RNN / nn.LSTM / nn.GRU (input 8, hidden H, batch B; one layer, one direction unless
--layers/--bidirectional) forward + backward with the loss on the last step (--loss every: on every
step's output, so that a gradient enters every step of the sweeps), fused kernels. Compared, each giving
every step's total gradient:
  record()                    the default: one pass, log-domain sweep (plain and log10 norms);
  record(step)                the same, its carry rescaled at every step instead of in blocks;
  record(eager)               the same, its steps eager (GRADLAB_COMPILED=0) instead of compiled;
  record(log_domain=False)    one pass, plain sweep;
  bptt(), bptt(log_domain=True)  the hand-derived pass with parameter and input gradients;
  checkpointed_norms()        gradlab analyze's √T-memory engine (norms only, log domain);
  products                    not an engine: the matrix products that torch's forward + backward and bptt()
                              both must do, each over all steps as one large product (torch.mm): where they
                              fit in the cache, about the floor of any implementation at this BLAS's rate,
                              whose recurrent products run as one small product a step (products_floor).
Threads as torch is told (--threads, default 2). Median of --repeats interleaved rounds (every column once
per round) after one warm-up each. Prints
milliseconds and ratios to the baseline. Not a test: timings depend on the machine.

    python benchmarks/engine_speed.py                        # T in 100, 1000; H = 128; B = 32
    python benchmarks/engine_speed.py --lengths 10000 --repeats 3
    python benchmarks/engine_speed.py --hidden 64 256
    python benchmarks/engine_speed.py --models lstm --lengths 10000 --repeats 1
    python benchmarks/engine_speed.py --block 1              # the log domain rescaling at every step
    python benchmarks/engine_speed.py --layers 2 --bidirectional --loss every   # a gradient entering every step
    python benchmarks/engine_speed.py --device cuda --sizes 32,128 64,512 256,1024 --lengths 1000   # the GPU table
    python benchmarks/engine_speed.py --smoke                # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import gradlab
from gradlab.engine import logscale
from gradlab.models.architectures.compiled import kernels

TORCH_MODULES = {"srn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
COLUMNS = ("record()", "record(step)", "record(eager)", "record(plain)", "bptt()", "bptt(log)", "bptt(eager)",
           "checkpointed", "products")


def interleaved_medians(fns: dict, repeats: int, device: str = "cpu") -> dict[str, float]:
    """Median wall time (ms) of each of ``fns`` after one warm-up each, timed in ``repeats`` rounds
    that call every function once in turn, so that a machine that slows down or speeds up during the
    run moves every column alike; on CUDA synchronised before and after each call."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def every_step(fn):
    """``fn()`` with the log-domain carry rescaled at every step (block 1), as before blocks."""
    block, logscale.BLOCK = logscale.BLOCK, 1
    try:
        return fn()
    finally:
        logscale.BLOCK = block


def eager(fn):
    """``fn()`` with the backward sweeps' steps run eagerly instead of compiled."""
    was = os.environ.get("GRADLAB_COMPILED")
    os.environ["GRADLAB_COMPILED"] = "0"
    try:
        return fn()
    finally:
        if was is None:
            del os.environ["GRADLAB_COMPILED"]
        else:
            os.environ["GRADLAB_COMPILED"] = was


def products_floor(arch, T: int, B: int, H: int, I: int, layers: int, directions: int, device: str):
    """A function doing, once each, the matrix products that torch's fused forward + backward and
    ``bptt()`` both do (random operands of the right shapes, made here). Per layer: the input projection
    of both directions in one product, [T·B, in] · [in, D·G·H]; per direction the forward's recurrent
    product [T·B, H] · [H, G·H] and the backward's [T·B, G·H] · [G·H, H], each as one product over all
    steps instead of T dependent ones, and the parameter gradients δᵀ [x, h, 1] ([G·H, T·B] · [T·B,
    in + H + 1]; where the two projections' gradients differ, as the GRU's, δxᵀ [x, 1] and δyᵀ [h, 1]
    apart: the architectures whose b_hh is not redundant); above layer 0 the gradient handed
    down, both directions in one product, [T·B, D·G·H] · [D·G·H, in]. Nothing elementwise and no memory
    to allocate (the products write into outputs kept from call to call): what these products cost at
    torch.mm's rate for these shapes. Where the operands fit in the cache (T = 100 at B = 32, H = 128)
    that is about the floor of any implementation, whose recurrent products run as T small dependent
    ones; where they do not (T ≥ 1000), an engine that works on chunks of steps in cache can beat it."""
    G, D, rows = arch.gate_count, directions, T * B
    one_side = arch.bias_hh_is_redundant  # both projections have the same gradient: one product δᵀ [x, h, 1]

    def new(*shape):
        return torch.randn(*shape, device=device)

    work = []
    for k in range(layers):
        width = I if k == 0 else D * H
        w_ih = new(width, D * G * H)
        work.append((new(rows, width), w_ih))
        for _ in range(D):
            h, d, w_hh = new(rows, H), new(rows, G * H), new(H, G * H)
            sides = [new(rows, width + H + 1)] if one_side else [new(rows, width + 1), new(rows, H + 1)]
            work += [(h, w_hh), (d, w_hh.T)] + [(d.T, side) for side in sides]
        if k > 0:
            work.append((new(rows, D * G * H), w_ih.T))
    work = [(a, b, torch.empty(a.shape[0], b.shape[1], device=device)) for a, b in work]
    return lambda: [torch.mm(a, b, out=out) for a, b, out in work]  # into kept outputs: no page faults timed


def bench(kind: str, T: int, B: int, H: int, repeats: int, device: str = "cpu", layers: int = 1,
          bidirectional: bool = False, every: bool = False) -> dict[str, float]:
    torch.manual_seed(0)
    fused = TORCH_MODULES[kind](8, H, num_layers=layers, bidirectional=bidirectional).to(device)
    model = gradlab.from_torch(fused)
    x = torch.randn(T, B, 8, device=device)
    grad_output = torch.zeros(T, B, (2 if bidirectional else 1) * H, device=device)
    grad_output[slice(None) if every else -1] = 1.0
    loss = (lambda out: out.sum()) if every else (lambda out: out[-1].sum())  # noqa: E731

    def fused_step():
        out, _ = fused(x)
        loss(out).backward()

    def explicit(t0, t1, out):
        return grad_output[t0:t1]

    fns = {
        "torch": fused_step,
        "record()": lambda: gradlab.record(fused, x, loss, full=False),
        "record(step)": lambda: every_step(lambda: gradlab.record(fused, x, loss, full=False)),
        "record(eager)": lambda: eager(lambda: gradlab.record(fused, x, loss, full=False)),
        "record(plain)": lambda: gradlab.record(fused, x, loss, full=False, log_domain=False),
        "bptt()": lambda: gradlab.bptt(model, x, grad_output),
        "bptt(log)": lambda: gradlab.bptt(model, x, grad_output, log_domain=True),
        "bptt(eager)": lambda: eager(lambda: gradlab.bptt(model, x, grad_output)),
        "checkpointed": lambda: gradlab.checkpointed_norms(model, lambda t0, t1: x[t0:t1], explicit, T, B,
                                                           progress=False),
    }
    if bidirectional:  # the checkpointed engine sweeps forward in segments: one direction only
        del fns["checkpointed"]
    fns["products"] = products_floor(model.architecture, T, B, H, 8, layers, 2 if bidirectional else 1, device)
    return interleaved_medians(fns, repeats, device)


def pair(text: str) -> tuple[int, int]:
    """An argparse type: "B,H" → (B, H)."""
    try:
        b, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected B,H (two integers), got {text!r}") from None
    return b, h


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--lengths", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--hidden", type=int, nargs="+", default=[128])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--sizes", type=pair, nargs="+", default=None, metavar="B,H",
                   help="(batch, hidden) pairs instead of --batch × --hidden, e.g. the GPU table's 32,128 64,512 256,1024")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where everything runs; on CUDA each call is synchronised and TF32 is off")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", nargs="+", choices=tuple(TORCH_MODULES), default=["lstm", "gru", "srn"])
    p.add_argument("--layers", type=positive, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--loss", choices=("last", "every"), default="last",
                   help="the loss on the last step's output (default) or on every step's")
    p.add_argument("--block", type=int, default=logscale.BLOCK,
                   help=f"steps the log-domain sweep runs between rescalings (default {logscale.BLOCK}; 1: every step)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this machine has no CUDA device (torch.cuda.is_available() is False)")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # the same float32 arithmetic as on the CPU
    torch.backends.cudnn.allow_tf32 = False
    logscale.BLOCK = args.block
    lengths, repeats = ((20,), 1) if args.smoke else (args.lengths, args.repeats)
    sizes = [(args.batch, 8)] if args.smoke else (args.sizes or [(args.batch, H) for H in args.hidden])
    where = (torch.cuda.get_device_name() + ", TF32 off, synchronised") if args.device == "cuda" else \
        (platform.processor() or platform.machine())
    steps = "compiled" if kernels(torch.empty(1)) is not None else "eager (the compiled ones are unavailable)"
    shape = f"{args.layers} layer(s){', bidirectional' if args.bidirectional else ''}"
    print(f"# {where}, torch {torch.__version__}, {args.threads} CPU thread(s); input 8, {shape}, loss on "
          f"{'every step' if args.loss == 'every' else 'the last step'}; median of {repeats} interleaved rounds; "
          f"log-domain block {args.block}; sweep steps {steps}; baseline: torch fused forward + backward "
          f"({'cuDNN' if args.device == 'cuda' else 'CPU kernels'})")
    print(f"{'model':5s} {'B':>4s} {'H':>5s} {'T':>6s} {'torch ms':>9s}  " + "  ".join(f"{c:>15s}" for c in COLUMNS))
    for kind in args.models:
        for B, H in sizes:
            for T in lengths:
                t = bench(kind, T, B, H, repeats, args.device, args.layers, args.bidirectional, args.loss == "every")
                base = t["torch"]
                cells = "  ".join(f"{t[c] / base:6.2f}x ({t[c]:5.0f})" if c in t else f"{'n/a':>15s}" for c in COLUMNS)
                print(f"{kind:5s} {B:4d} {H:5d} {T:6d} {base:9.1f}  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
