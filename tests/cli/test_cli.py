"""`gradlab analyze` end to end: files, numbers that can be re-checked, and clear errors."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import gradlab
from gradlab.tasks.weights import load_problems
from gradlab.cli import main


def exit_code(argv) -> int:
    """main's exit status, whether argparse raised it (bad flags) or main returned it (bad values)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def run_dirs(out):
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_analyze_writes_a_complete_run_that_can_be_rechecked(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["analyze", "--model", "srn,lstm", "--len", "12", "--batch", "4", "--hidden", "8",
                 "--dtype", "float64", "--out", str(out), "--quiet"]) == 0
    (run,) = run_dirs(out)
    assert {p.name for p in run.iterdir()} == {"trace.csv", "summary.json", "decay.png", "decay.pdf",
                                               "models.pt", "batch.pt"}
    assert (run / "decay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "decay.pdf").read_bytes()[:5] == b"%PDF-"
    printed = capsys.readouterr().out
    assert str(run) in printed and "decay factor" in printed and "horizon" in printed

    rows = read_csv(run / "trace.csv")
    assert {"t", "distance", "grad_h", "grad_c", "log10_grad_h", "log10_grad_c"} <= set(rows[0])
    assert [r["model"] for r in rows] == ["srn"] * 12 + ["lstm"] * 12
    assert all(r["grad_c"] == "" for r in rows if r["model"] == "srn")
    assert all(int(r["t"]) + int(r["distance"]) == 11 for r in rows)

    summary = json.loads((run / "summary.json").read_text())
    assert summary["config"]["seed"] == 0 and summary["config"]["length"] == 12
    assert summary["versions"]["torch"] == torch.__version__
    fit = summary["models"]["lstm"]["gradients"]["c"]["decay_factor_per_step"]
    assert 0 < fit["factor"] < 1 and fit["first"] == 1 and fit["last"] == 11
    assert "horizon" in summary["models"]["srn"]["gradients"]["h"]
    # theory next to measurement
    assert set(summary["models"]["srn"]["theory"]) == {"lyapunov", "pascanu_bound"}
    assert set(summary["models"]["lstm"]["theory"]) == {"lyapunov", "forget_gates"}
    side_by_side = summary["models"]["lstm"]["decay_factor_per_step"]
    assert {"fitted_h", "fitted_c", "predicted_by_lyapunov", "predicted_by_forget_gates"} == set(side_by_side)

    # re-check: rebuild each model from models.pt, record again (autograd hooks) on batch.pt and
    # compare with trace.csv, which the checkpointed log-domain engine wrote
    problems = load_problems(run / "models.pt")
    batch = torch.load(run / "batch.pt")
    for kind in ("srn", "lstm"):
        problem = problems[kind]
        assert problem.readout.weight.dtype == torch.float64
        trace = gradlab.record(problem.model, problem.embed(batch["inputs"]),
                               problem.loss_fn(batch["targets"], "last"))
        for name in problem.model.state_names:
            want = trace.grad_norms(name).mean(axis=1)[::-1]
            got = np.array([float(r[f"grad_{name}"]) for r in rows if r["model"] == kind])
            np.testing.assert_allclose(got, want, rtol=1e-12)
            got_log = np.array([float(r[f"log10_grad_{name}"]) for r in rows if r["model"] == kind])
            np.testing.assert_allclose(got_log, np.log10(want), atol=1e-12, rtol=0)


def test_runs_never_overwrite_each_other(tmp_path):
    args = ["analyze", "--model", "gru", "--len", "4", "--batch", "2", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0 and main(args) == 0
    assert len(run_dirs(tmp_path)) == 2


def test_underflow_is_reported_as_such_never_nan(tmp_path, capsys):
    assert main(["analyze", "--model", "srn", "--len", "260", "--batch", "4", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(0 in float32)" in printed and "nan" not in printed.lower()
    (run,) = run_dirs(tmp_path)
    rows = read_csv(run / "trace.csv")
    assert rows[-1]["status_h"] == "underflow" and float(rows[-1]["grad_h"]) == 0.0
    # the log-domain value goes on where float32 has nothing left
    assert -80 < float(rows[-1]["log10_grad_h"]) < -45
    assert not any("nan" in v.lower() for r in rows for v in r.values())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["models"]["srn"]["gradients"]["h"]["steps_underflowed"] > 0


@pytest.mark.parametrize("argv,fragment", [
    (["--model", "transformer"], "invalid choice 'transformer'"),
    (["--model", "srn,foo"], "invalid choice 'foo'"),
    (["--len", "0"], "--len: expected an integer >= 1, got 0"),
    (["--len", "ten"], "--len: expected an integer >= 1, got 'ten'"),
    (["--len", "2.5"], "--len: expected an integer >= 1"),
    (["--hidden", "0"], "--hidden: expected an integer >= 1"),
    (["--layers", "-1"], "--layers: expected an integer >= 1"),
    (["--batch", "0"], "--batch: expected an integer >= 1"),
    (["--seed", "-3"], "--seed: expected an integer from 0 to 9223372036854775807, got -3"),
    (["--seed", "99999999999999999999"], "--seed: expected an integer from 0 to 9223372036854775807"),
    (["--len", "99999999999999", "--hidden", "4", "--batch", "1"], "--len: the run needs at least 5.0 PiB of memory; "
                                                                    "this machine has"),
    (["--hidden", "1000000000"], "--hidden: the run needs at least"),
    (["--task", "adding", "--data", "."], "--data: adding is generated from --seed, not read from files (--data is for "
                                          "mnist-rows, digits-rows)"),
    (["--loss-at", "middle"], "--loss-at: invalid choice"),
    (["--dtype", "float16"], "--dtype: invalid choice"),
    (["--device", "tpu"], "--device: invalid choice"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_bad_flags_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    assert exit_code(["analyze", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,fragment", [
    (["--len", "100000000000"], "--len: the run needs at least"),
    (["--hidden", "100000000"], "--hidden: the run needs at least"),
    (["--seed", "18446744073709551616"], "--seed: expected an integer from 0 to"),
    (["--clip-norm", "3"], "--clip-norm: applies with --clip global or --clip per-param"),
    (["--clip", "none", "--clip-norm", "3"], "--clip-norm: applies with --clip global or --clip per-param"),
])
def test_train_refuses_what_cannot_fit_or_seed_before_allocating(argv, fragment, capsys, tmp_path):
    assert exit_code(["train", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_memory_check_passes_what_fits_and_names_the_largest_part(monkeypatch):
    from gradlab.analysis import footprint
    from gradlab.common.options import InvalidOption

    footprint.refuse_beyond_memory({"hidden": 10, "length": 20})  # bytes: fits anywhere
    monkeypatch.setattr("gradlab.common.memory.available_bytes", lambda: 25)
    with pytest.raises(InvalidOption) as exc:
        footprint.refuse_beyond_memory({"hidden": 10, "length": 20})
    assert exc.value.field == "length" and "needs at least 30 B of memory; this machine has 25 B available" in str(exc.value)


def test_an_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker, blocker / "sub"):
        assert main(["analyze", "--len", "3", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "--out: cannot write runs under" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_where_there_is_none_exits_2(tmp_path, capsys):
    assert main(["analyze", "--device", "cuda", "--len", "3", "--out", str(tmp_path)]) == 2
    assert "cuda is not available" in capsys.readouterr().err


@pytest.mark.parametrize("config", [gradlab.AnalyzeConfig, gradlab.TrainConfig])
@pytest.mark.parametrize("cuda", [True, False])
def test_device_auto_is_cuda_where_torch_sees_a_device_else_cpu(config, cuda, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert config(device="auto").device == config(device="AUTO").device == ("cuda" if cuda else "cpu")
    assert config().device == "cpu" and config(device="cuda").device == "cuda"  # asked for: kept as asked


def test_analyze_device_auto_runs_where_it_resolves_and_records_that(tmp_path):
    assert main(["analyze", "--device", "auto", "--len", "3", "--out", str(tmp_path), "--quiet"]) == 0
    (run,) = run_dirs(tmp_path)
    recorded = json.loads((run / "summary.json").read_text())["config"]["device"]
    assert recorded == ("cuda" if torch.cuda.is_available() else "cpu")


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "analyze" in capsys.readouterr().err


def test_the_installed_command_runs_with_defaults_only(tmp_path):
    """`gradlab analyze --model lstm --len 100` as a user types it, in a fresh directory."""
    proc = subprocess.run([sys.executable, "-m", "gradlab", "analyze", "--model", "lstm", "--len", "100"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "LSTM c: decay factor" in proc.stdout
    (run,) = run_dirs(tmp_path / "runs")
    assert len(read_csv(run / "trace.csv")) == 100


def test_an_exploding_regime_reports_finite_log_norms(tmp_path, capsys):
    """tanh SRN, W_hh = 1.1·I, zero input and biases: h stays 0, φ′ = 1, ∂L/∂h_t grows ×1.1 per step."""
    assert main(["analyze", "--model", "srn", "--init", "identity", "--gain", "1.1", "--zero-input",
                 "--len", "1200", "--batch", "2", "--hidden", "4", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(inf in float32)" in printed and "nan" not in printed.lower()
    (run,) = run_dirs(tmp_path)
    rows = read_csv(run / "trace.csv")
    assert rows[-1]["status_h"] == "overflow"
    logs = np.array([float(r["log10_grad_h"]) for r in rows])
    assert np.isfinite(logs).all()
    gain = float(np.float32(1.1))  # the float32 weight the model holds
    # each step's ratio is read from float32 values, each rounded once more than the step before: to
    # float32's resolution of a ratio, log10(1 + 2 eps) (the carry, rescaled by powers of two since
    # 2026-12-02, is no longer exactly 1.0 at every step, which had made this exact to 1e-9)
    np.testing.assert_allclose(np.diff(logs), np.log10(gain), atol=np.log10(1 + 2 * np.finfo(np.float32).eps))
    fit = json.loads((run / "summary.json").read_text())["models"]["srn"]["gradients"]["h"]["decay_factor_per_step"]
    assert fit["factor"] == pytest.approx(gain, rel=1e-9)


def test_a_forward_pass_that_overflows_is_reported_not_crashed(tmp_path, capsys):
    assert main(["analyze", "--model", "srn", "--nonlinearity", "linear", "--init", "identity", "--gain", "2",
                 "--len", "300", "--batch", "2", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "the forward pass overflowed at step" in printed
    (run,) = run_dirs(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["models"]["srn"]["forward_overflow_step"] > 0
    assert {r["status_h"] for r in read_csv(run / "trace.csv")} == {"forward overflow"}


def test_forget_bias_moves_the_lstm_towards_longer_memory(tmp_path):
    factors = []
    for bias in ("0", "4"):
        out = tmp_path / bias
        assert main(["analyze", "--model", "lstm", "--forget-bias", bias, "--len", "60", "--batch", "4",
                     "--out", str(out), "--quiet"]) == 0
        (run,) = run_dirs(out)
        summary = json.loads((run / "summary.json").read_text())
        factors.append(summary["models"]["lstm"]["gradients"]["c"]["decay_factor_per_step"]["factor"])
    assert factors[1] > factors[0] and factors[1] > 0.9


@pytest.mark.parametrize("argv,fragment", [
    (["--init", "xavier"], "--init: invalid choice"),
    (["--gain", "0"], "--gain: expected a positive number"),
    (["--gain", "nan"], "--gain: expected a positive number"),
    (["--forget-bias", "x"], "--forget-bias: expected a finite number"),
    (["--nonlinearity", "sigmoid"], "--nonlinearity: invalid choice"),
])
def test_bad_regime_flags_exit_2(argv, fragment, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--out", str(tmp_path), *argv])
    assert exc.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("argv,fragment", [
    (["--model", "gru", "--forget-bias", "1"], "--forget-bias: applies to the LSTM only"),
    (["--model", "lstm", "--nonlinearity", "relu"], "--nonlinearity: applies to the SRN only"),
])
def test_regime_flags_for_the_wrong_model_exit_2(argv, fragment, capsys, tmp_path):
    assert main(["analyze", "--out", str(tmp_path), "--len", "3", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command,config", [("analyze", gradlab.AnalyzeConfig), ("train", gradlab.TrainConfig),
                                            ("verify", gradlab.VerifyConfig)])
def test_every_declared_option_is_a_flag_with_its_help(command, config, capsys):
    """Options are declared once on the config's fields; the flags and their help come from there."""
    from gradlab.common.options import flag_of, options_of

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for f, opt in options_of(config):
        shown = opt.metavar if opt.positional else flag_of(f, opt)
        assert shown in text and " ".join(opt.help.split()) in text, f.name
    assert text.count("regimes:") <= 1 and text.count("clipping:") <= 1
