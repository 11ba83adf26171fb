"""Seed 002's LSTM homework: the idealised operator, and torch's and gradlab's LSTMs agreeing."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lstm_homework.py"
spec = importlib.util.spec_from_file_location("lstm_homework", EXAMPLE)
homework = importlib.util.module_from_spec(spec)
spec.loader.exec_module(homework)


def test_rounded_gate_operator_with_linear_g_and_h_gives_the_exercise_answer():
    assert homework.rounded_gate_lstm() == [0, 0, 0, 0, 0, 7, 0, 0, 6]


def test_torch_cell_torch_lstm_and_gradlab_agree():
    outs = homework.standard_outputs()
    np.testing.assert_allclose(outs["gradlab.LSTM"], outs["nn.LSTMCell"], atol=1e-15, rtol=0)
    np.testing.assert_allclose(outs["nn.LSTM"], outs["nn.LSTMCell"], atol=1e-15, rtol=0)
    # the gates are saturated, so the standard LSTM shows tanh of what the idealised unit shows
    ideal_tanh = homework.rounded_gate_lstm(linear=False)
    np.testing.assert_allclose(outs["gradlab.LSTM"], ideal_tanh, atol=1e-4)


def test_the_closed_forget_gate_stops_the_gradient():
    grads = homework.cell_gradient_of_last_output()
    assert np.all(grads[6:] > 0.1)  # steps 7..9: the cell path is open
    assert np.all(grads[:6] < 1e-30)  # f_7 = σ(−90) ≈ 8e-40 closes it
    assert np.all(grads[:6] > 0)  # …but in float64 it has not underflowed


def test_example_runs():
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[0.0, 0.0, 0.0, 0.0, 0.0, 7.0, 0.0, 0.0, 6.0]" in proc.stdout
