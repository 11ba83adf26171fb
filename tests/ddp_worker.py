"""One rank of the DistributedDataParallel test (tests/watch/test_ddp.py), run in its own process."""

from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import gradlab


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same weights on every rank
        self.rnn = nn.GRU(3, 5, num_layers=2, bidirectional=True, dtype=torch.float64)
        self.head = nn.Linear(10, 1, dtype=torch.float64)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def batch(rank: int) -> torch.Tensor:
    return torch.randn(8, 4, 3, generator=torch.Generator().manual_seed(100 + rank), dtype=torch.float64)


def loss_of(y: torch.Tensor) -> torch.Tensor:
    return y.pow(2).mean()


def run(rank: int, world: int, init_file: str, out: str, results: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = Model()
        ddp = DistributedDataParallel(model)
        with gradlab.watch(ddp, out=out, full=True) as w:
            loss_of(ddp(batch(rank))).backward()
        trace = w.traces[0]["module.rnn"]
        torch.save({"dh": [trace.grad("h", k, d) for k in range(2) for d in range(2)],
                    "grads": {n: p.grad for n, p in model.named_parameters()},
                    "wrote": w.run_dir is not None}, Path(results) / f"{rank}.pt")
        dist.barrier()  # neither rank tears gloo down while the other still talks to it (an abort otherwise)
    finally:
        dist.destroy_process_group()
