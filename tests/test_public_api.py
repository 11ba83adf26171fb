"""One public API: what the README teaches is importable from ``gradlab`` and listed in __all__."""

import re
from pathlib import Path

import gradlab

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_everything_in_all_exists_and_the_issue_list_is_there():
    assert all(hasattr(gradlab, name) for name in gradlab.__all__)
    needed = {"record", "bptt", "Trace", "analyze", "AnalyzeConfig", "train", "TrainConfig", "verify", "VerifyConfig",
              "pascanu_bound", "lyapunov_exponents", "jacobian_spectra", "checkpointed_norms", "from_torch",
              "to_torch", "to_torch_cell", "from_nndl", "to_nndl", "from_d2l", "to_d2l", "decay_profile",
              "fit_decay", "horizon", "__version__"}
    assert needed <= set(gradlab.__all__)


def test_analyze_and_train_are_the_functions_and_version_is_only_a_string():
    assert callable(gradlab.analyze) and callable(gradlab.train) and callable(gradlab.verify)
    assert not hasattr(gradlab, "version")  # importlib's function used to leak here
    assert isinstance(gradlab.__version__, str) and gradlab.__version__[0].isdigit()


def test_the_readme_teaches_only_public_names():
    taught = set(re.findall(r"gradlab\.([A-Za-z_][A-Za-z_0-9]*)", README))
    assert taught <= set(gradlab.__all__) | {"Trace"}, taught - set(gradlab.__all__)
    assert "from gradlab." not in README


def test_the_engine_loads_without_matplotlib_and_the_figures_load_on_first_use():
    import subprocess
    import sys

    code = ("import sys, gradlab; assert 'matplotlib' not in sys.modules; "
            "from gradlab.plots.decay import decay_figure; assert gradlab.decay_figure is decay_figure")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
