"""`gradlab sweep` on Dask: the same small sweep with 1 and 2 local workers, and the Dask path against
running its tasks one after another in this process, in the same run.

The sweep: ``gradlab sweep train --model srn,lstm --seed 0-3`` at digit-sum length 10, hidden 16,
``--steps`` steps (8 tasks). Baseline: the same tasks one after another in this process
(``gradlab.sweep.tasks.run_task``, what each worker runs, with all cores' threads), no Dask. Each Dask
row is ``run_sweep`` into a fresh directory, timed from the call (cluster start and shutdown included)
to the last run directory written. Prints wall times and their ratios to the baseline; the scaling
1 → 2 workers is the ratio of those two rows. Not a test: timings depend on the machine.

    python benchmarks/sweep_scaling.py            # 8 tasks of 300 steps
    python benchmarks/sweep_scaling.py --smoke    # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from gradlab.sweep.run import plan, run_sweep
from gradlab.sweep.tasks import run_task


def flags(steps: int, seeds: str) -> list[str]:
    return ["--model", "srn,lstm", "--seed", seeds, "--task", "digit-sum", "--len", "10", "--hidden", "16",
            "--steps", str(steps), "--batch", "8", "--eval-every", str(max(steps // 3, 1))]


def serial_seconds(argv: list[str]) -> float:
    threads = os.cpu_count() or 1
    start = time.perf_counter()
    for task in plan("train", argv):
        assert run_task("train", task, threads)["status"] == "finished"
    return time.perf_counter() - start


def sweep_seconds(argv: list[str], workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcome = run_sweep("train", argv, Path(tmp) / "sweep", workers=workers, progress=False)
        seconds = time.perf_counter() - start
    assert not outcome.failed, outcome.failed
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    steps, seeds = (3, "0") if args.smoke else (args.steps, "0-3")
    sweep = flags(steps, seeds)
    tasks = len(plan("train", sweep))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"{tasks} training tasks of {steps} steps; baseline: the tasks one after another in this process "
          f"({os.cpu_count()} threads), no Dask")
    base = serial_seconds(sweep)
    print(f"{'path':34s} {'seconds':>8s} {'/ baseline':>10s}")
    print(f"{'one process, one after another':34s} {base:8.2f} {1.0:9.2f}x")
    times = {}
    for workers in (1, 2):
        times[workers] = sweep_seconds(sweep, workers)
        print(f"{f'LocalCluster, {workers} worker(s)':34s} {times[workers]:8.2f} {times[workers] / base:9.2f}x")
    print(f"speed-up 1 -> 2 workers: {times[1] / times[2]:.2f}x; Dask overhead with 1 worker: "
          f"{times[1] - base:+.2f} s ({times[1] / base:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
