"""examples/bilstm_tagger.py runs in its smoke mode and leaves a readable watch run and TensorBoard logs."""

import re
import subprocess
import sys
from pathlib import Path

import gradlab

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bilstm_tagger.py"


def test_the_tagger_example_trains_watched_and_writes_its_run(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--smoke", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    recorded = re.findall(r"^step\s+(\d+) .* fades ×([\d.]+) per step$", proc.stdout, re.M)
    assert [int(s) for s, _ in recorded] == [0, 5, 10] and all(float(f) > 0 for _, f in recorded)
    run_dir = re.search(r"run directory: (.+)", proc.stdout).group(1)
    steps = gradlab.load_watch(run_dir)
    assert [s.step for s in steps] == [0, 5, 10] and steps[0]["rnn"].num_directions == 2
    assert any((tmp_path / "tensorboard").iterdir())
    bad = subprocess.run([sys.executable, str(EXAMPLE), "--steps", "0"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "--steps" in bad.stderr
