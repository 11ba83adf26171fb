"""Every experiments/ and benchmarks/ script runs in its --smoke mode."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def run(script, *args, cwd):
    return subprocess.run([sys.executable, str(script), "--smoke", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("script", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_smoke_run_writes_png_pdf_and_json(script, tmp_path):
    proc = run(script, "--out", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert {f"{script.stem}.png", f"{script.stem}.pdf", f"{script.stem}.json"} <= names
    assert (tmp_path / f"{script.stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / f"{script.stem}.pdf").read_bytes()[:5] == b"%PDF-"
    sidecar = json.loads((tmp_path / f"{script.stem}.json").read_text())
    numbers = re.findall(r"-?\d+\.\d+", json.dumps(sidecar))
    assert len(numbers) >= 3, "the sidecar holds the numbers drawn"
    # a second run refuses to overwrite unless asked
    before = (tmp_path / f"{script.stem}.json").read_bytes()
    again = run(script, "--out", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert (tmp_path / f"{script.stem}.json").read_bytes() == before


def test_overwrite_replaces_the_files_when_asked(tmp_path):
    # every script writes through experiments/_common.py; one of them shows that --overwrite works
    script = ROOT / "experiments" / "decay_at_init.py"
    assert run(script, "--out", str(tmp_path), cwd=tmp_path).returncode == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("decay_at_init.*")}
    assert run(script, "--out", str(tmp_path), "--overwrite", cwd=tmp_path).returncode == 0
    assert all(p.stat().st_mtime_ns > stamp[p.name] for p in tmp_path.glob("decay_at_init.*"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_smoke_run_prints_a_measured_row(script, tmp_path):
    """Each benchmark names its baseline and ends with a line of finite measurements, one positive."""
    proc = run(script, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "torch" in proc.stdout.splitlines()[0] or "baseline" in proc.stdout
    number = r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
    last = proc.stdout.strip().splitlines()[-1]
    values = [float(v) for v in re.findall(number, last)]
    assert values and all(math.isfinite(v) for v in values) and max(values) > 0, last
    assert len(re.findall(number, proc.stdout)) >= 6, proc.stdout


def test_decay_through_training_reuses_nndl_memory_models_and_gets_the_same_curves(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    assert run(ROOT / "experiments" / "nndl_memory.py", "--out", str(tmp_path / "a"), "--checkpoints", str(checkpoints),
               cwd=tmp_path).returncode == 0
    script = ROOT / "experiments" / "decay_through_training.py"
    assert run(script, "--out", str(tmp_path / "b"), "--checkpoints", str(checkpoints), cwd=tmp_path).returncode == 0
    assert run(script, "--out", str(tmp_path / "c"), cwd=tmp_path).returncode == 0
    reused = json.loads((tmp_path / "b" / "decay_through_training.json").read_text())["runs"]
    fresh = json.loads((tmp_path / "c" / "decay_through_training.json").read_text())["runs"]
    for model in ("srn", "lstm"):
        assert str(checkpoints) in reused[f"digit-sum/{model}"]["source"]
        assert fresh[f"digit-sum/{model}"]["source"] == "trained here"
        for when in ("init", "trained"):
            # to float32 accuracy (its epsilon, 1.2e-7): torch's fused float32 kernels sum in an order that
            # depends on the thread count, and nndl_memory trains with one thread per job
            assert reused[f"digit-sum/{model}"]["log10_mean_grad_h"][when] == pytest.approx(
                fresh[f"digit-sum/{model}"]["log10_mean_grad_h"][when], abs=1.2e-7)
    assert reused["digit-sum/gru"]["source"] == "trained here"
