"""`gradlab verify`: bptt() against autograd from the command line."""

import pytest

from gradlab.cli import main


def test_verify_all_models_passes_and_lists_every_quantity(capsys):
    assert main(["verify", "--model", "all", "--len", "6", "--layers", "2"]) == 0
    out = capsys.readouterr().out
    for label in ("srn (tanh)", "srn (relu)", "srn (linear)", "lstm", "gru"):
        assert f"\n{label}\n" in f"\n{out}"
    for quantity in ("weight_hh_l1", "bias_ih_l0", "dx", "dh0", "dc0", "dh_t (layer 1)", "dc_t (layer 0)"):
        assert quantity in out
    assert "agree with autograd" in out


def test_verify_exits_1_when_an_error_exceeds_the_tolerance(capsys):
    assert main(["verify", "--model", "gru", "--len", "5", "--tol", "1e-300"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "FAILED" in out


def test_verify_rechecks_a_saved_analyze_run(tmp_path, capsys):
    assert main(["analyze", "--model", "lstm,gru", "--len", "15", "--batch", "3", "--hidden", "6",
                 "--out", str(tmp_path), "--quiet"]) == 0
    (run,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    capsys.readouterr()
    assert main(["verify", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"lstm (run {run.name})" in out and f"gru (run {run.name})" in out


def test_verify_bidirectional_random_problems_pass(capsys):
    assert main(["verify", "--bidirectional", "--len", "6"]) == 0
    out = capsys.readouterr().out
    assert "lstm, bidirectional" in out and "dh_t (layer 1, reverse)" in out and "weight_hh_l1_reverse" in out


@pytest.mark.parametrize("argv,fragment", [
    (["--model", "rnn"], "--model: invalid choice"),
    (["--len", "0"], "--len: expected an integer >= 1"),
    (["--tol", "-1"], "--tol: expected a positive number"),
    (["--tol", "abc"], "--tol: expected a positive number"),
])
def test_verify_bad_flags_exit_2(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["verify", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_verify_on_a_directory_that_is_not_a_run_exits_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a gradlab analyze run" in err and len(err.strip().splitlines()) == 1


def _analyze_run(out, model: str):
    assert main(["analyze", "--model", model, "--len", "6", "--batch", "2", "--hidden", "4", "--out", str(out),
                 "--quiet"]) == 0
    (run,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    return run


@pytest.mark.parametrize("damage,fragment", [
    ("corrupt models", "models.pt: not a gradlab problem set"),
    ("empty batch", "batch.pt: not a readable batch file (EOFError)"),
    ("models of another run", "models.pt holds gru but batch.pt was drawn for srn: the two files come from different runs"),
    ("a model the run lacks", "--model: the run has srn, not lstm"),
])
def test_verify_on_a_damaged_or_mixed_run_exits_2_with_one_line(damage, fragment, tmp_path, capsys):
    run = _analyze_run(tmp_path / "a", "srn")
    argv = ["verify", str(run)]
    if damage == "corrupt models":
        (run / "models.pt").write_bytes(b"garbage")
    elif damage == "empty batch":
        (run / "batch.pt").write_bytes(b"")
    elif damage == "models of another run":
        (run / "models.pt").write_bytes((_analyze_run(tmp_path / "b", "gru") / "models.pt").read_bytes())
    else:
        argv += ["--model", "lstm"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
