"""DistributedDataParallel, two CPU processes over gloo: each rank records its own batch, the
all-reduced parameter gradients are those of an unwatched run, and only rank 0 writes a run directory."""

import torch
import torch.multiprocessing as mp

import gradlab
from ddp_worker import Model, batch, loss_of, run


def test_each_rank_records_its_own_batch_and_rank_0_alone_writes(tmp_path):
    out, results = tmp_path / "runs", tmp_path / "results"
    out.mkdir()
    results.mkdir()
    mp.spawn(run, args=(2, str(tmp_path / "init"), str(out), str(results)), nprocs=2, join=True)
    ranks = [torch.load(results / f"{r}.pt") for r in range(2)]
    assert [r["wrote"] for r in ranks] == [True, False] and len(list(out.iterdir())) == 1
    unwatched = []
    for r in range(2):  # each rank's batch on its own, unwatched, then the mean DDP all-reduces to
        model = Model()
        loss_of(model(batch(r))).backward()
        unwatched.append({n: p.grad for n, p in model.named_parameters()})
        ref = gradlab.record(model.rnn, batch(r), lambda out: loss_of(model.head(out)))
        for i, got in enumerate(ranks[r]["dh"]):
            torch.testing.assert_close(got, ref.grad("h", i // 2, i % 2), rtol=1e-10, atol=1e-14)
    for name, g in ranks[0]["grads"].items():
        mean = (unwatched[0][name] + unwatched[1][name]) / 2
        torch.testing.assert_close(g, mean, rtol=1e-10, atol=1e-14, msg=name)
        torch.testing.assert_close(ranks[1]["grads"][name], g, rtol=0, atol=0)
