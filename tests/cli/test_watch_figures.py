"""gradlab watch-figures RUN_DIR draws a watch run directory whole, into a fresh directory."""

import json

import torch
from torch import nn

import gradlab
from gradlab.cli import main


def watched_run(tmp_path):
    model = nn.GRU(3, 4, num_layers=2)
    with gradlab.watch(model, every=2, out=tmp_path / "runs") as w:
        for _ in range(5):
            model(torch.randn(12, 3, 3))[0].pow(2).sum().backward()
    return w.run_dir.path, w


def test_the_figures_of_every_curve_with_their_numbers(tmp_path, capsys):
    run_dir, w = watched_run(tmp_path)
    assert main(["watch-figures", str(run_dir), "--out", str(tmp_path / "fig")]) == 0
    (out,) = (tmp_path / "fig").iterdir()
    names = {p.name for p in out.iterdir()}
    for curve in ("model_h_layer0", "model_h_layer1"):
        assert {f"{curve}_curves.png", f"{curve}_curves.pdf", f"{curve}_heatmap.png", f"{curve}_heatmap.pdf",
                f"{curve}.json"} <= names
    sidecar = json.loads((out / "model_h_layer1.json").read_text())
    assert sidecar["steps"] == [0, 2, 4]
    profile, fit, _ = gradlab.decay_of(w.traces[-1][""], "h", layer=1)
    assert sidecar["fits"][-1]["factor"] == fit.factor
    assert len(sidecar["log10_mean"][-1]) == 12
    assert str(out) in capsys.readouterr().out
    # a second call writes a fresh directory beside the first
    assert main(["watch-figures", str(run_dir), "--out", str(tmp_path / "fig")]) == 0
    assert len(list((tmp_path / "fig").iterdir())) == 2


def test_what_is_not_a_watch_run_directory_ends_with_one_line(tmp_path, capsys):
    assert main(["watch-figures", str(tmp_path / "missing")]) == 2
    assert main(["watch-figures", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is not a directory" in err[0] and "not a gradlab watch run directory" in err[1]
