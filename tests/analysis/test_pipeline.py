"""gradlab.analyze from Python works exactly as from the command line: configuration, checkpoints
of every architecture, and descriptions taken from what ran."""

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

import gradlab
from gradlab.common.options import InvalidOption
from gradlab.runs.analysis_run import summary
from gradlab.tasks.weights import save_checkpoint

TINY = gradlab.TrainConfig(task="digit-sum", length=6, hidden=6, steps=3, batch=8, sizes=(40, 16, 16), eval_every=3)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for model in ("srn", "lstm", "gru"):
        result = gradlab.train(replace(TINY, model=model), progress=False)
        paths[model] = save_checkpoint(root / f"{model}.pt", result.problem, asdict(result.config), {"step": 3})
        paths[model + "/problem"] = result.problem
    return paths


@pytest.mark.parametrize("model", ["srn", "lstm", "gru"])
def test_analyze_from_python_on_a_checkpoint_of_every_architecture(model, checkpoints):
    analysis = gradlab.analyze(gradlab.AnalyzeConfig(checkpoint=str(checkpoints[model]), batch=4), progress=False)
    cfg = analysis.config
    assert (cfg.models, cfg.hidden, cfg.length, cfg.task) == ((model,), 6, 6, "digit-sum")  # from the checkpoint
    (res,) = analysis.results
    trained = checkpoints[model + "/problem"]
    for name, p in trained.state_dict().items():
        assert torch.equal(res.problem.state_dict()[name], p), name
    assert set(res.fits) == set(trained.model.state_names)
    # the trace is the trained model's: the same as recording it directly on the same batch
    x = res.problem.embed(torch.as_tensor(analysis.inputs))
    direct = gradlab.record(res.problem.model, x, res.problem.loss_fn(torch.as_tensor(analysis.targets)))
    for name in trained.model.state_names:
        np.testing.assert_allclose(res.trace.log10_grad_norms(name), direct.log10_grad_norms(name), atol=1e-5)
    assert "trained (checkpoint" in summary(analysis)["problem"]["state"]


def test_a_checkpoint_fixes_the_model_and_refuses_other_values(checkpoints):
    path = str(checkpoints["lstm"])
    with pytest.raises(InvalidOption, match="hidden come"):
        gradlab.AnalyzeConfig(checkpoint=path, hidden=7).resolved()
    with pytest.raises(InvalidOption, match="init come"):
        gradlab.AnalyzeConfig(checkpoint=path, init="orthogonal").resolved()
    agreeing = gradlab.AnalyzeConfig(checkpoint=path, hidden=6, models=("lstm",)).resolved()
    assert agreeing == agreeing.resolved()  # resolving twice changes nothing
    with pytest.raises(InvalidOption, match="checkpoint: .*no such file"):
        gradlab.AnalyzeConfig(checkpoint=str(checkpoints["lstm"]) + ".missing").resolved()


def test_options_given_from_python_are_checked_as_the_flags_are():
    with pytest.raises(InvalidOption, match=r"^length: expected an integer >= 1, got -1$"):
        gradlab.AnalyzeConfig(length=-1)
    with pytest.raises(InvalidOption, match="models: invalid choice 'rnn'"):
        gradlab.AnalyzeConfig(models=("rnn",))
    assert gradlab.AnalyzeConfig(models="SRN,lstm").models == ("srn", "lstm")  # one rule: case does not matter
    assert gradlab.TrainConfig(model="GRU").model == "gru"
    with pytest.raises(InvalidOption, match="model: invalid choice 'rnn'"):
        gradlab.TrainConfig(model="rnn")
    with pytest.raises(InvalidOption, match="forget_bias: applies to the LSTM only"):
        gradlab.AnalyzeConfig(models=("gru",), forget_bias=1.0).resolved()
