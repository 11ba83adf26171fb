"""The files of an analyze run describe what ran, from the objects that ran."""

import json

import pytest

import gradlab
from gradlab.runs.analysis_run import summary, write_run
from gradlab.tasks.weights import load_problems


@pytest.mark.parametrize("task,loss", [("adding", "squared error summed over the batch, on the last step"),
                                       ("digit-sum", "cross-entropy summed over the batch, on the last step"),
                                       ("copy", "cross-entropy summed over the batch, on every step")])
def test_the_summary_describes_the_loss_and_model_that_ran(task, loss):
    analysis = gradlab.analyze(gradlab.AnalyzeConfig(models=("gru",), task=task, length=24, batch=2, hidden=4),
                               progress=False)
    problem = summary(analysis)["problem"]
    assert problem["loss"] == loss
    model = problem["model"]["gru"]
    assert "GRU(" in model and "Linear(in_features=4" in model
    assert ("Embedding(" in model) == (task != "adding")
    assert "log domain" in problem["engine"]


def test_the_run_directory_holds_the_problems_that_ran_and_a_readable_summary(tmp_path):
    analysis = gradlab.analyze(gradlab.AnalyzeConfig(models=("srn", "lstm"), length=5, batch=2, hidden=3,
                                                     nonlinearity="relu", out=str(tmp_path)), progress=False)
    run = write_run(analysis)
    problems = load_problems(run / "models.pt")
    assert set(problems) == {"srn", "lstm"}
    assert problems["srn"].model.nonlinearity == "relu" and problems["lstm"].model.hidden_size == 3
    for res in analysis.results:
        for name, p in res.problem.state_dict().items():
            assert (problems[res.kind].state_dict()[name] == p).all()
    saved = json.loads((run / "summary.json").read_text())
    assert saved["config"]["models"] == ["srn", "lstm"] and saved["config"]["nonlinearity"] == "relu"
    assert saved["problem"]["model"]["srn"].startswith("Embedding(10, 32) -> SRN(32, 3, nonlinearity='relu')")


def test_a_prediction_of_zero_is_reported_not_drawn_as_nan(tmp_path):
    """A ReLU SRN whose units all die has a Lyapunov exponent of −inf (factor 0)."""
    analysis = gradlab.analyze(gradlab.AnalyzeConfig(models=("srn",), length=5, batch=2, hidden=3,
                                                     nonlinearity="relu", out=str(tmp_path)), progress=False)
    (res,) = analysis.results
    assert res.predictions["lyapunov"]["exponent_per_step"] == float("-inf")
    run = write_run(analysis)
    saved = json.loads((run / "summary.json").read_text())
    assert saved["models"]["srn"]["theory"]["lyapunov"]["exponent_per_step"] == "-inf"
    assert (run / "decay.png").stat().st_size > 0
