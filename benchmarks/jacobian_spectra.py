"""Jacobian spectra for every t by one cotangent-block sweep, against a naive per-t autograd loop.

Baseline: for each t, torch.autograd.functional.jacobian (vectorize=True) of the final state with
respect to the state at t through the unrolled steps t+1..T−1, then its singular values. Its cost
grows with T − t, so it is timed at a few t spread over the sequence and its total over all T
values of t estimated as T × their mean (said so in the output). Compared: gradlab.analysis.jacobians
.jacobian_spectra (state and input spectra for every t). LSTM, H = 64, batch 1, float32.

    python benchmarks/jacobian_spectra.py           # T = 1000 (target: at least 100× faster)
    python benchmarks/jacobian_spectra.py --smoke   # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import gradlab
from gradlab.analysis.jacobians import jacobian_spectra
from gradlab.analysis.state_jacobians import flat_step


def naive_state_spectrum(model, x, t: int) -> torch.Tensor:
    step = flat_step(model)
    T = x.shape[0]
    S = model.num_layers * len(model.state_names) * model.hidden_size
    with torch.no_grad():
        s = torch.zeros(S, dtype=x.dtype)
        for u in range(t + 1):
            s = step(s, x[u, 0])

    def final(s_t):
        for u in range(t + 1, T):
            s_t = step(s_t, x[u, 0])
        return s_t

    return torch.linalg.svdvals(torch.autograd.functional.jacobian(final, s, vectorize=True))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    T, H = (20, 4) if args.smoke else (1000, 64)
    torch.manual_seed(0)
    model = gradlab.LSTM(H, H)
    x = torch.randn(T, 1, H)
    start = time.perf_counter()
    spectra = jacobian_spectra(model, x)
    sweep = time.perf_counter() - start
    samples = [0, T // 4, T // 2, 3 * T // 4]
    per_t = []
    for t in samples:
        start = time.perf_counter()
        sv = naive_state_spectrum(model, x, t)
        per_t.append(time.perf_counter() - start)
        k = T - 1 - t
        want, got = float(sv[0]), float(spectra.state[k, 0, 0])
        # far back both underflow to 0.0 in float32; compare where the naive value is normal
        assert abs(got - want) <= 1e-3 * want if want > 1e-30 else got <= 1e-30, f"disagree at t={t}"
    naive_total = statistics.mean(per_t) * T
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; LSTM H={H}, T={T}, batch 1, float32")
    print(f"sweep (state and input spectra, every t): {sweep:.2f} s")
    print(f"naive per-t autograd (state spectrum only): {statistics.mean(per_t):.3f} s per t at t in {samples}; "
          f"estimated total over {T} values of t: {naive_total:.3g} s")
    print(f"speed-up (estimated naive total / sweep): {naive_total / sweep:.3g}x")


if __name__ == "__main__":
    main()
