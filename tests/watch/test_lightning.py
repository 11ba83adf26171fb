"""The same watch handle under PyTorch Lightning's Trainer: its training steps are the steps, its
validation (under inference mode) records nothing, and a recorded step is what record() gives."""

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gradlab

L = pytest.importorskip("lightning")


class Tagger(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(3, 6, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(12, 2)

    def loss(self, x, y):
        out, _ = self.rnn(x)
        return nn.functional.cross_entropy(self.head(out).flatten(0, 1), y.flatten())

    def training_step(self, batch, batch_idx):
        return self.loss(*batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(*batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def batches():
    gen = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(16, 9, 3, generator=gen), torch.randint(0, 2, (16, 9), generator=gen))
    return DataLoader(data, batch_size=4, shuffle=False)


def test_a_lightning_trainer_run_is_watched_unchanged():
    model = Tagger()
    initial = copy.deepcopy(model)
    trainer = L.Trainer(max_steps=5, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=2,
                        val_check_interval=2)
    with gradlab.watch(model, every=2) as w, warnings.catch_warnings():
        # Lightning 2.6 on torch 2.13 calls a deprecated pytree API inside fit (its own FutureWarning)
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        trainer.fit(model, batches(), batches())
    assert [t.step for t in w.traces] == [0, 2, 4] and w.step == 5  # validation steps are not steps
    x, y = next(iter(batches()))
    want = gradlab.record(initial.rnn, x, lambda out: nn.functional.cross_entropy(
        initial.head(out).flatten(0, 1), y.flatten()))
    got = w.traces[0]["rnn"]
    for k in range(2):
        for d in range(2):
            torch.testing.assert_close(torch.as_tensor(got.grad_norms("h", k, d)),
                                       torch.as_tensor(want.grad_norms("h", k, d)), rtol=1e-4, atol=1e-9)
    assert not model.rnn._forward_hooks and not model.rnn._forward_pre_hooks
