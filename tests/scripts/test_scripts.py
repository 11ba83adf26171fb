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
    checkpoints = tmp_path / "sweep"
    assert run(ROOT / "experiments" / "nndl_memory.py", "--out", str(tmp_path / "a"), "--runs", str(checkpoints),
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
            # depends on the thread count, and nndl_memory's sweep trains with one thread per worker
            assert reused[f"digit-sum/{model}"]["log10_mean_grad_h"][when] == pytest.approx(
                fresh[f"digit-sum/{model}"]["log10_mean_grad_h"][when], abs=1.2e-7)
    assert reused["digit-sum/gru"]["source"] == "trained here"


@pytest.mark.parametrize("script,args,fragment", [
    ("decay_at_init", ["--out", "/dev/null"], "argument --out: /dev/null is not a directory"),
    ("nndl_gates", ["--checkpoint", "/nonexistent.pt"], "argument --checkpoint: no such file or directory: /nonexistent.pt"),
    ("nndl_gates", ["--checkpoint", "corrupt.pt"], "argument --checkpoint: corrupt.pt: not a gradlab checkpoint"),
    ("nndl_memory", ["--workers", "0"], "argument --workers: expected an integer >= 1, got 0"),
    ("nndl_memory", ["--workers", "-3"], "argument --workers: expected an integer >= 1, got -3"),
    ("nndl_memory", ["--seeds", "4-0"], "argument --seed: the range 4-0 is empty"),
    ("nndl_explosion", ["--seeds", "zero"], "argument --seed: "),
    ("decay_through_training", ["--checkpoints", "/nonexistent"], "argument --checkpoints: /nonexistent is not a directory"),
    ("nndl_explosion", ["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_script_flags_exit_2_with_one_line_and_write_nothing(script, args, fragment, tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    out_args = [] if "--out" in args else ["--out", str(out)]
    proc = run(ROOT / "experiments" / f"{script}.py", *out_args, *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "runs").exists()  # no sweep directory either


def test_the_examples_refuse_unknown_flags():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "lstm_homework.py"), "--bogus"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr


def test_ctrl_c_while_writing_the_figures_leaves_no_partial_set_and_exits_130(tmp_path, monkeypatch, capsys):
    """The PDF's save is interrupted after the PNG and the JSON were written: none of the three remains."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location("decay_at_init_under_test", ROOT / "experiments" / "decay_at_init.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import _common
    from gradlab.common import files

    real = files.figure_writers

    def interrupted_pdf(fig, stem):
        writers = real(fig, stem)
        def ctrl_c(path):
            raise KeyboardInterrupt
        return {p: (ctrl_c if p.suffix == ".pdf" else w) for p, w in writers.items()}

    monkeypatch.setattr(_common, "figure_writers", interrupted_pdf)
    code = _common.run("decay_at_init", lambda: script.main(["--smoke", "--out", str(tmp_path)]))
    assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["decay_at_init: interrupted; no partial figure set was written"]
    assert list(tmp_path.iterdir()) == []  # nor any temporary file


@pytest.mark.parametrize("script", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_help_states_the_scripts_whole_first_paragraph(script):
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    doc = script.read_text().split('"""')[1]
    assert " ".join(doc.split("\n\n")[0].split()) in " ".join(proc.stdout.split())


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="with CUDA the script runs the whole device check")
def test_the_gpu_check_stops_in_one_line_without_cuda(tmp_path):
    import os

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip() == "gpu_check: no CUDA device here"
    assert list(tmp_path.iterdir()) == []
