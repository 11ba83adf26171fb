"""The LSTM homework of seed 002 ("深度学习第十一次作业"), runnable.

One LSTM unit with four inputs x = [value, write, read, 1] and hand-set weights:

    g (candidate)  = [1, 0, 0, 0]·x        i (input gate)  = σ([0, 100, 0, -10]·x)
    f (forget gate) = σ([0, 100, 0, 10]·x)   o (output gate) = σ([0, 0, 100, -10]·x)

so the cell adds `value` when write = 1, forgets when write = -1, and shows itself when read = 1.
With the gates rounded to 0/1 and a linear candidate and output (the exercise's idealised operator)
the outputs are [0, 0, 0, 0, 0, 7, 0, 0, 6]. The standard LSTM (σ and tanh, torch's nn.LSTMCell /
nn.LSTM with these rows as input weights, recurrent weights and biases zero) and gradlab's LSTM
compute the same function; gradlab also shows where the gradient of the last output reaches.

    python examples/lstm_homework.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import gradlab

INPUTS = np.array([[1, 0, 0, 1], [3, 1, 0, 1], [2, 0, 0, 1], [4, 1, 0, 1], [2, 0, 0, 1],
                   [1, 0, 1, 1], [3, -1, 0, 1], [6, 1, 0, 1], [1, 0, 1, 1]], dtype=float)
CANDIDATE_W = np.array([1, 0, 0, 0])
INPUT_GATE_W = np.array([0, 100, 0, -10])
FORGET_GATE_W = np.array([0, 100, 0, 10])
OUTPUT_GATE_W = np.array([0, 0, 100, -10])
#: torch's weight_ih rows in gate order i, f, g, o
WEIGHT_IH = np.stack([INPUT_GATE_W, FORGET_GATE_W, CANDIDATE_W, OUTPUT_GATE_W])


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def rounded_gate_lstm(inputs: np.ndarray = INPUTS, linear: bool = True) -> list[float]:
    """The exercise's NumPy operator: gates rounded to 0 or 1; with ``linear`` the candidate is
    g = w·x and the output h = o·c (the idealised unit), otherwise tanh as in the seed's code."""
    act = (lambda a: a) if linear else np.tanh
    c, outputs = 0.0, []
    for x in inputs:
        g = act(CANDIDATE_W @ x)
        i, f, o = (np.round(sigmoid(w @ x)) for w in (INPUT_GATE_W, FORGET_GATE_W, OUTPUT_GATE_W))
        c = f * c + i * g
        outputs.append(float(o * act(c)))
    return outputs


def torch_cell() -> nn.LSTMCell:
    cell = nn.LSTMCell(4, 1, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.as_tensor(WEIGHT_IH))
        cell.weight_hh.zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    return cell


def standard_outputs() -> dict[str, np.ndarray]:
    """h_t of the standard LSTM from nn.LSTMCell step by step, nn.LSTM, and gradlab.LSTM."""
    cell = torch_cell()
    x = torch.as_tensor(INPUTS)
    state, by_cell = None, []
    for xt in x.unsqueeze(1):
        state = cell(xt, state)
        by_cell.append(state[0].item())
    model = gradlab.from_torch(cell)
    lstm = gradlab.to_torch(model)  # nn.LSTM with the same weights
    return {"nn.LSTMCell": np.array(by_cell),
            "nn.LSTM": lstm(x.unsqueeze(1))[0].detach().numpy().ravel(),
            "gradlab.LSTM": model(x.unsqueeze(1))[0].detach().numpy().ravel()}


def cell_gradient_of_last_output() -> np.ndarray:
    """‖∂h_9/∂c_t‖ for t = 1..9: the forget gate closes at step 7, and the gradient stops there."""
    model = gradlab.from_torch(torch_cell())
    trace = gradlab.record(model, torch.as_tensor(INPUTS).unsqueeze(1), lambda out: out[-1].sum())
    return trace.grad_norms("c")[:, 0]


def main(argv=None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)  # no flags; --help, and bad ones refused
    np.set_printoptions(precision=3, suppress=True)
    print("rounded gates, linear g and h:", rounded_gate_lstm())
    print("rounded gates, tanh g and h:  ", np.round(rounded_gate_lstm(linear=False), 3).tolist())
    for name, out in standard_outputs().items():
        print(f"{name + ':':<14} {np.round(out, 3)}")
    grads = cell_gradient_of_last_output()
    print("‖∂h_9/∂c_t‖, t = 1..9:", " ".join(f"{g:.1e}" for g in grads))


if __name__ == "__main__":
    main()
