"""The TensorBoard sink, read back with TensorBoard's own event reader."""

import pytest
import torch
from torch import nn

import gradlab

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_each_recorded_step_writes_its_decay_scalars_and_figures(tmp_path):
    model = nn.LSTM(3, 6, bidirectional=True)
    with gradlab.watch(model, every=2, tensorboard=str(tmp_path)) as w:
        for _ in range(5):
            out, _ = model(torch.randn(40, 4, 3))
            out.pow(2).sum().backward()
    acc = read(tmp_path)
    scalars, images = set(acc.Tags()["scalars"]), set(acc.Tags()["images"])
    for curve in ("h/layer0", "c/layer0", "h/layer0/reverse", "c/layer0/reverse"):
        factor = acc.Scalars(f"gradlab/model/{curve}/decay_factor")
        assert [e.step for e in factor] == [0, 2, 4]
        _, fit, _ = gradlab.decay_of(w.traces[-1][""], curve.split("/")[0], layer=0,
                                     direction=int(curve.endswith("reverse")))
        assert factor[-1].value == pytest.approx(fit.factor, rel=1e-6)
        assert f"gradlab/model/{curve}/log10_grad_at_10" in scalars
        assert f"gradlab/model/{curve}/through_training" in images
    assert "gradlab/model/decay" in images and len(acc.Images("gradlab/model/decay")) == 3
    png = acc.Images("gradlab/model/h/layer0/through_training")[-1].encoded_image_string
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_summary_writer_of_the_users_is_written_to_and_left_open(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    model = nn.GRU(3, 4)
    with gradlab.watch(model, tensorboard=writer):
        model(torch.randn(10, 2, 3))[0].sum().backward()
    writer.add_scalar("mine", 1.0, 0)  # still open
    writer.close()
    tags = read(tmp_path).Tags()["scalars"]
    assert "mine" in tags and "gradlab/model/h/layer0/decay_factor" in tags
