"""Your own model, watched: a BiLSTM tagger on packed variable-length batches, trained with
gradlab.watch writing a run directory and TensorBoard logs, the model, loss and loop unchanged.

The task (synthetic, offline): sequences of 5–40 digits; the tag of every position is the first
digit of its sequence mod 3, so the forward direction must carry it from position 0 to the end.

    python examples/bilstm_tagger.py                 # 300 steps, about a minute on 2 cores
    python examples/bilstm_tagger.py --smoke         # seconds, for the test suite
    tensorboard --logdir runs/                       # then look at the gradlab/ scalars and images

Prints the tagging accuracy and, at every recorded step, how fast the cell-state gradient of the
top layer's forward direction fades with distance (the decay factor per step, from gradlab.decay_of).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gradlab


class Tagger(nn.Module):
    def __init__(self, vocab: int = 10, embed: int = 16, hidden: int = 32, tags: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, num_layers=2, bidirectional=True)
        self.head = nn.Linear(2 * hidden, tags)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens: [T, B] padded, lengths: [B] → tag scores [T, B, tags]."""
        packed = pack_padded_sequence(self.embed(tokens), lengths, enforce_sorted=False)
        out, _ = self.rnn(packed)
        return self.head(pad_packed_sequence(out, total_length=tokens.shape[0])[0])


def batch(gen: torch.Generator, size: int, longest: int):
    lengths = torch.randint(5, longest + 1, (size,), generator=gen)
    tokens = torch.randint(0, 10, (longest, size), generator=gen)
    tags = (tokens[0] % 3).expand(longest, size)
    valid = torch.arange(longest).unsqueeze(1) < lengths
    return tokens, lengths, tags, valid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=50, help="record every N steps (default: 50)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="where the watch's run directory and logs go")
    p.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds")
    args = p.parse_args(argv)
    if args.steps < 1 or args.every < 1:
        p.error("--steps and --every must be >= 1")
    steps, longest, size = (12, 12, 8) if args.smoke else (args.steps, 40, 32)
    every = 5 if args.smoke else args.every
    torch.manual_seed(0)
    torch.set_num_threads(1 if args.smoke else 2)
    model = Tagger(hidden=8 if args.smoke else 32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    logdir = args.out / "tensorboard"
    with gradlab.watch(model, every=every, out=args.out, tensorboard=str(logdir)) as w:
        for step in range(steps):
            tokens, lengths, tags, valid = batch(gen, size, longest)
            scores = model(tokens, lengths)
            loss = nn.functional.cross_entropy(scores[valid], tags[valid])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if w.traces and w.traces[-1].step == step:  # this step was recorded
                _, fit, _ = gradlab.decay_of(w.traces[-1]["rnn"], "c", layer=-1, direction=0)
                factor = "none" if fit.factor is None else f"×{fit.factor:.3f} per step"
                accuracy = (scores.argmax(-1)[valid] == tags[valid]).float().mean().item()
                print(f"step {step:4d}  loss {loss.item():.3f}  accuracy {accuracy:.2f}  "
                      f"top layer, forward: ∂L/∂c_t fades {factor}", flush=True)
    print(f"run directory: {w.run_dir.path}\nTensorBoard: tensorboard --logdir {logdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
