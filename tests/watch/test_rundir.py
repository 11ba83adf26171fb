"""A watch's run directory: every finished step written whole, readable after a SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import gradlab

TRAINING = """
import sys, torch, gradlab
from torch import nn
torch.manual_seed(0)
model = nn.LSTM(3, 8, num_layers=2, bidirectional=True)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
with gradlab.watch(model, every=1, out=sys.argv[1], keep=2) as w:
    print(w.run_dir.path, flush=True)
    for step in range(100000):
        out, (h, c) = model(torch.randn(30, 4, 3))
        opt.zero_grad(); (out.pow(2).sum() + c.sum()).backward(); opt.step()
        print(step, flush=True)
"""


def test_a_training_process_killed_mid_run_leaves_every_finished_step_readable(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", TRAINING, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        run_dir = proc.stdout.readline().strip()
        for _ in range(6):  # six steps finished, then kill it wherever it is
            proc.stdout.readline()
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
    steps = gradlab.load_watch(run_dir)
    assert len(steps) >= 6 and [s.step for s in steps] == list(range(len(steps)))
    for s in steps:
        trace = s[""]  # the watched model is the root module
        assert trace.num_directions == 2 and np.isfinite(trace.log10_grad_norms("c", 0, 1)).all()
    visible = [f for f in os.listdir(run_dir) if not f.startswith(".")]
    for name in visible:  # no half file: everything visible is whole
        if name.endswith(".npz"):
            gradlab.Trace.load(os.path.join(run_dir, name))
        elif name.startswith("step-"):  # a step's summary
            assert json.loads((tmp_path / run_dir / name).read_text())["modules"][""]
        else:
            assert name == "watch.json" and json.loads((tmp_path / run_dir / name).read_text())["format"]


def test_the_run_directory_holds_what_the_watch_had(tmp_path):
    model = nn.GRU(3, 4, dtype=torch.float64)
    with gradlab.watch(model, every=2, out=tmp_path, full=True) as w:
        for _ in range(5):
            model(torch.randn(6, 2, 3, dtype=torch.float64))[0].sum().backward()
    again = gradlab.load_watch(w.run_dir.path)
    assert [s.step for s in again] == [s.step for s in w.traces] == [0, 2, 4]
    for a, b in zip(again, w.traces):
        assert np.array_equal(a[""].log10_grad_norms("h"), b[""].log10_grad_norms("h"))
        assert torch.equal(a[""].grad("h"), b[""].grad("h"))
    index = json.loads((w.run_dir.path / "watch.json").read_text())
    assert index["every"] == 2 and index["modules"] == [""] and len(index["steps"]) == 3
    for entry, step in zip(index["steps"], w.traces):  # each step's summary: the numbers decay_of gives
        summary = json.loads((w.run_dir.path / entry["summary"]).read_text())
        (curve,) = summary["modules"][""]
        profile, fit, hz = gradlab.decay_of(step[""], "h")
        assert summary["step"] == step.step and (curve["state"], curve["layer"], curve["direction"]) == ("h", 0, 0)
        assert curve["decay_factor"] == fit.factor and curve["horizon"] == hz.distance
        np.testing.assert_array_equal(curve["log10_mean"], profile.log10_mean)
        assert curve["status"] == list(profile.status) and len(curve["log10_lo"]) == 6
    # a second watch writes into a fresh directory, never over the first
    with gradlab.watch(model, out=tmp_path) as w2:
        model(torch.randn(6, 2, 3, dtype=torch.float64))[0].sum().backward()
    assert w2.run_dir.path != w.run_dir.path and len(gradlab.load_watch(w.run_dir.path)) == 3


def test_keep_bounds_the_steps_in_memory_and_needs_a_sink(tmp_path):
    model = nn.RNN(3, 4)
    with gradlab.watch(model, out=tmp_path, keep=2) as w:
        for _ in range(5):
            model(torch.randn(4, 2, 3))[0].sum().backward()
    assert [s.step for s in w.traces] == [3, 4] and len(gradlab.load_watch(w.run_dir.path)) == 5
    with pytest.raises(ValueError, match="give out= too"):
        gradlab.watch(model, keep=2)
    with pytest.raises(ValueError, match="not a gradlab watch run directory"):
        gradlab.load_watch(tmp_path)
