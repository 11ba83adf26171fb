"""gradlab train end to end, gradlab analyze --checkpoint on its result, and every bad flag."""

import csv
import json

import numpy as np
import pytest
import torch

import gradlab
from gradlab.tasks.weights import load_checkpoint
from gradlab.cli import main

SMALL = ["--task", "temporal-order", "--len", "10", "--hidden", "6", "--steps", "6", "--batch", "4",
         "--sizes", "16,8,8", "--eval-every", "3", "--trace-every", "3", "--trace-batch", "4", "--quiet"]


def test_train_writes_a_whole_run_that_analyze_reads(tmp_path, capsys):
    assert main(["train", "--model", "lstm", *SMALL, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (run,) = tmp_path.iterdir()
    assert str(run) in out and "test accuracy" in out
    names = {p.name for p in run.iterdir()}
    assert names == {"config.json", "summary.json", "history.csv", "evals.csv", "traces.csv", "checkpoint.pt",
                     "training.png", "training.pdf"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["task"]["chance"] == 0.25
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and "grad_norm/model.weight_hh_l0" in rows[0]
    with open(run / "traces.csv") as f:
        steps = sorted({int(r["step"]) for r in csv.DictReader(f)})
    assert steps == [0, 3, 6]

    # the checkpoint analysed on its own task: the trace equals autograd's on the trained weights
    analysis_dir = tmp_path / "analysis"
    assert main(["analyze", "--checkpoint", str(run / "checkpoint.pt"), "--batch", "3", "--dtype", "float64",
                 "--out", str(analysis_dir), "--quiet"]) == 0
    (arun,) = analysis_dir.iterdir()
    config = json.loads((arun / "summary.json").read_text())["config"]
    assert (config["task"], config["models"], config["hidden"], config["length"]) == ("temporal-order", ["lstm"], 6, 10)
    problem, _, _ = load_checkpoint(run / "checkpoint.pt")
    problem = problem.double()
    batch = torch.load(arun / "batch.pt")
    trace = gradlab.record(problem.model, problem.embed(batch["inputs"]), problem.loss_fn(batch["targets"]))
    with open(arun / "trace.csv") as f:
        got = np.array([float(r["grad_h"]) for r in csv.DictReader(f)])
    np.testing.assert_allclose(got, trace.grad_norms("h").mean(axis=1)[::-1], rtol=1e-12)
    assert main(["verify", str(arun)]) == 0


@pytest.mark.parametrize("task, length", [("adding", "12"), ("copy", "25"), ("digits-rows", "8")])
def test_train_runs_every_task(tmp_path, task, length):
    args = ["train", "--model", "gru", "--task", task, "--len", length, "--hidden", "4", "--steps", "2",
            "--batch", "4", "--eval-every", "2", "--quiet", "--out", str(tmp_path)]
    if task != "digits-rows":
        args += ["--sizes", "8,4,4"]
    assert main(args) == 0


def test_train_reads_digit_sum_files(tmp_path):
    assert main(["data", "digit-sum", "--lengths", "5", "--out", str(tmp_path / "data")]) == 0
    assert main(["train", "--model", "srn", "--len", "5", "--epochs", "1", "--data", str(tmp_path / "data"),
                 "--quiet", "--out", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "summary.json").read_text())["steps"] == 38  # ceil(300 / 8), the book's loader


@pytest.mark.parametrize("args, message", [
    (["--task", "mnist-rows"], "--data"),
    (["--task", "mnist-rows", "--len", "20"], "28 steps"),
    (["--task", "copy", "--len", "15"], "at least 21"),
    (["--task", "adding", "--data", "somewhere"], "generated"),
    (["--task", "digits-rows", "--sizes", "5,5,5"], "fixed"),
    (["--sizes", "5,5"], "3 counts"),
    (["--clip", "sometimes"], "invalid choice"),
    (["--clip-norm", "0"], "positive"),
    (["--epochs", "3", "--steps", "4"], "steps replaces epochs"),
    (["--model", "lstm", "--nonlinearity", "relu"], "SRN only"),
    (["--lr", "nan"], "positive"),
    (["--len", "12", "--data", "MISSING"], "no train.txt"),
])
def test_train_rejects_bad_values_with_one_line(tmp_path, capsys, args, message):
    args = [a.replace("MISSING", str(tmp_path / "none")) for a in args]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["train", *args, "--out", str(tmp_path), "--quiet"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.glob("*train*"))


def test_analyze_checkpoint_that_is_missing_says_so(tmp_path, capsys):
    assert main(["analyze", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such file" in err and len(err.splitlines()) == 1


def test_analyze_checkpoint_refuses_flags_the_checkpoint_fixes(tmp_path, capsys):
    assert main(["train", "--model", "srn", *SMALL, "--out", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    for extra in (["--model", "lstm"], ["--hidden", "9"], ["--init", "orthogonal"], ["--task", "adding"]):
        capsys.readouterr()
        assert main(["analyze", "--checkpoint", str(run / "checkpoint.pt"), *extra, "--out", str(tmp_path)]) == 2
        assert "from the checkpoint" in capsys.readouterr().err


def test_a_diverging_run_stops_and_says_so(tmp_path, capsys):
    # a linear SRN with every W_hh block at spectral radius 50: the forward pass overflows float32
    args = ["train", "--model", "srn", "--nonlinearity", "linear", "--init", "orthogonal", "--gain", "50",
            "--task", "adding", "--len", "40", "--sizes", "8,4,4", "--steps", "5", "--batch", "4", "--quiet",
            "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "training stopped at step 1: the loss overflowed float32" in out and "nan" not in out.lower()
    assert out.count("no linear nonlinearity") == 1  # said once: this SRN trains as gradlab's model
    (run,) = tmp_path.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["diverged"].startswith("step 1") and summary["steps"] == 0
    assert summary["engine"].startswith("gradlab's unrolled SRN")


@pytest.mark.parametrize("task, length", [("copy", 30), ("temporal-order", 10), ("digits-rows", 8)])
def test_train_length_defaults_to_the_tasks(tmp_path, task, length):
    args = ["train", "--task", task, "--hidden", "4", "--steps", "1", "--batch", "4", "--quiet", "--out", str(tmp_path)]
    assert main(args + ([] if task == "digits-rows" else ["--sizes", "8,4,4"])) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "config.json").read_text())["length"] == length
