"""gradlab sweep: a grid of tasks on Dask (a LocalCluster, or a scheduler and workers started as
processes), its table against aggregates computed independently, faults, resuming, bad specs."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from gradlab.cli import main

TINY = ["--model", "srn,lstm", "--len", "5,6", "--seed", "0-1", "--hidden", "4", "--steps", "3", "--batch", "4",
        "--sizes", "16,8,8", "--eval-every", "3"]


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def independent_table(out: Path) -> dict[tuple, list[float]]:
    """(model, len) → the test scores read from each run directory's summary.json."""
    scores: dict[tuple, list[float]] = {}
    for run in (out / "runs").iterdir():
        summary = json.loads((run / "summary.json").read_text())
        cfg = summary["config"]
        scores.setdefault((cfg["model"], str(cfg["length"])), []).append(summary["test"]["value"])
    return scores


def test_a_local_cluster_sweep_writes_every_run_and_a_table_that_matches_the_runs(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "train", *TINY, "--out", str(out), "--workers", "2", "--quiet"]) == 0
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 8 and "model=lstm_len=6_seed=1" in runs
    table = read_csv(out / "sweep.csv")
    expected = independent_table(out)
    assert len(table) == 4
    for row in table:
        scores = np.array(expected[(row["model"], row["len"])])
        assert int(row["seeds"]) == 2 == len(scores)
        assert float(row["test_score_mean"]) == pytest.approx(scores.mean(), abs=1e-12)
        if scores.std() > 0:
            lo, hi = stats.t.interval(0.95, 1, loc=scores.mean(), scale=scores.std(ddof=1) / np.sqrt(2))
            assert float(row["test_score_ci95_low"]) == pytest.approx(lo) and float(row["test_score_ci95_high"]) == pytest.approx(hi)
    state = json.loads((out / "sweep.json").read_text())
    assert {t["status"] for t in state["tasks"].values()} == {"finished"} and len(state["tasks"]) == 8
    assert (out / "sweep_test_score.png").read_bytes()[:4] == b"\x89PNG" and (out / "sweep_test_score.pdf").exists()
    # gradlab report draws a sweep directory: its table and its figures with error bars
    assert main(["report", str(out), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    (report,) = (tmp_path / "r").iterdir()
    page = (report / "report.html").read_text()
    assert "A sweep over seeds and settings" in page and "test_score_ci95_low" in page
    assert (report / "sweep_sweep_test_score.png").exists()


def test_one_seed_leaves_the_interval_empty_never_nan(tmp_path):
    out = tmp_path / "s"
    assert main(["sweep", "train", "--model", "srn", "--len", "5,6", "--hidden", "4", "--steps", "2", "--batch", "4",
                 "--sizes", "16,8,8", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    for row in read_csv(out / "sweep.csv"):
        assert row["seeds"] == "1" and row["test_score_std"] == "" and row["test_score_ci95_low"] == ""
    assert "nan" not in (out / "sweep.csv").read_text().lower()


def test_an_interrupted_sweep_resumes_without_running_anything_twice(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sweep", "train", "--model", "srn", "--len", "5", "--seed", "0-2", "--hidden", "4", "--steps", "2",
            "--batch", "4", "--sizes", "16,8,8", "--out", str(out), "--workers", "1", "--quiet"]
    assert main(argv) == 0
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    victim = sorted(kept)[1]
    import shutil
    shutil.rmtree(out / "runs" / victim)  # as if killed before this run was written
    capsys.readouterr()
    assert main(argv) == 0
    assert "(1 run now, 2 kept)" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert set(after) == set(kept) and all(after[n] == kept[n] for n in kept if n != victim)
    # a different specification on the same directory is refused
    assert main(["sweep", "train", "--model", "srn", "--len", "6", "--out", str(out), "--quiet"]) == 2
    assert "holds a different sweep" in capsys.readouterr().err


def test_a_failing_task_is_recorded_with_its_reason_and_the_others_finish(tmp_path, capsys):
    out = tmp_path / "s"
    # a linear SRN at gain 50 overflows its forward pass: that training stops, the tanh one finishes
    code = main(["sweep", "train", "--model", "srn", "--nonlinearity", "tanh,linear", "--init", "orthogonal",
                 "--gain", "50", "--len", "30", "--hidden", "4", "--steps", "3", "--batch", "4", "--sizes", "16,8,8",
                 "--out", str(out), "--workers", "1", "--quiet"])
    assert code == 1
    captured = capsys.readouterr().out
    assert "1 task(s) failed" in captured and "training stopped" in captured
    state = json.loads((out / "sweep.json").read_text())
    statuses = {name: t["status"] for name, t in state["tasks"].items()}
    assert statuses == {"nonlinearity=tanh": "finished", "nonlinearity=linear": "failed"}
    # the figure's one curve is the fixed model's (coloured as the SRN everywhere), not the command's
    assert set(json.loads((out / "sweep_test_score.json").read_text())["curves"]) == {"srn"}


def test_a_file_as_the_sweep_directory_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["sweep", "train", "--len", "5", "--out", str(tmp_path / "f"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file, not a directory" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv,fragment", [
    (["sweep", "train", "--len", "0,5"], "argument --len: expected an integer >= 1, got 0"),
    (["sweep", "train", "--seed", "4-1"], "argument --seed: the range 4-1 is empty"),
    (["sweep", "train", "--frobnicate", "1"], "argument --frobnicate: not a flag of gradlab train"),
    (["sweep", "train", "--len", "5,5"], "argument --len: '5,5' has an empty or repeated alternative"),
    (["sweep", "analyze", "--model", "srn,rnn"], "invalid choice 'rnn'"),
    (["sweep", "train", "--workers", "0"], "argument --workers: expected an integer >= 1, got 0"),
])
def test_bad_sweep_specifications_exit_2_with_one_line(argv, fragment, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two workers on 127.0.0.1, started as processes; stopped by process id."""
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(scheduler_file)], log)]
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for _ in range(2):
        procs.append(_start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                             "--no-dashboard", "--host", "127.0.0.1"], log))
    from dask.distributed import Client
    with Client(address, timeout="30s") as c:
        c.wait_for_workers(2, timeout=60)
    yield address, procs
    for p in reversed(procs):  # the workers first, then the scheduler they would try to reach
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    log.close()


def test_a_sweep_runs_on_an_external_scheduler_and_survives_a_killed_worker(cluster, tmp_path, capsys):
    address, procs = cluster
    out = tmp_path / "s"
    argv = ["sweep", "train", "--model", "srn", "--len", "8", "--seed", "0-5", "--hidden", "8", "--steps", "150",
            "--batch", "4", "--sizes", "64,8,8", "--eval-every", "50", "--out", str(out), "--scheduler", address, "--quiet"]
    import threading

    written_at_kill = []

    def kill_a_worker_mid_sweep():
        deadline = time.time() + 120
        while time.time() < deadline and not any((out / "runs").glob("seed=*")):  # named by the varied flag
            time.sleep(0.05)
        written_at_kill.append(len(list((out / "runs").glob("seed=*"))))
        os.kill(procs[1].pid, signal.SIGKILL)  # the first run is written: the sweep is under way

    killer = threading.Thread(target=kill_a_worker_mid_sweep)
    killer.start()
    assert main(argv) == 0
    killer.join()
    assert 1 <= written_at_kill[0] < 6  # killed mid-sweep
    assert procs[1].wait(timeout=10) is not None  # that worker is gone
    assert len(list((out / "runs").iterdir())) == 6 and len(read_csv(out / "sweep.csv")) == 1
