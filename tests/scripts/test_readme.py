"""The README's promises: its Python example runs, and CI runs its test command verbatim."""

import re

import numpy as np
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert first_block[0] == "pip install . && gradlab analyze --model lstm --len 100"
    test_command = first_block[1]
    assert "pytest" in test_command and "[test]" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_readme_python_examples_run_and_agree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save a trace into the current directory
    namespace = {}
    for code in re.findall(r"```python\n(.*?)```", README, re.S):
        exec(compile(code, "README.md", "exec"), namespace)
    trace, res = namespace["trace"], namespace["res"]
    assert trace.grad_norms("h").shape == (200, 8)
    assert trace.grad("h").shape == (200, 8, 64)
    # the hand-derived pass and the hooks see the same gradient (float32: compared norm-wise,
    # since elements near cancellation differ relatively more between two summation orders)
    a, b = res.grad("h", -1), trace.grad("h")
    assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    assert repr(trace).startswith("Trace(lstm, layers=2, directions=1, T=200, B=8, H=64")
    again = namespace["gradlab"].Trace.load(tmp_path / "trace.npz")
    assert np.array_equal(again.log10_grad_norms("c", 0), trace.log10_grad_norms("c", 0))
    assert namespace["fit"].factor is not None and (tmp_path / "decay.png").read_bytes()[:4] == b"\x89PNG"
    w = namespace["w"]
    assert [t.step for t in w.traces] == [0, 10, 20] and w.step == 30
    masked = namespace["lstm"].log10_grad_norms("c", layer=0, direction=1)
    assert isinstance(masked, np.ma.MaskedArray) and np.isfinite(masked.compressed()).all()
    profile, fit, horizon = namespace["gradlab"].decay_of(namespace["lstm"], "c", layer=0, direction=1)
    assert fit.factor is not None and 0 < fit.factor < 1
