"""The example notebook runs in a real Jupyter kernel, and its Trace, analysis and watch handle
display their decay figure and table."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_notebook_runs_and_shows_the_figures(tmp_path):
    nb = nbformat.read(ROOT / "examples" / "gradient_decay.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr" and "Traceback" in o.text]
    shown = [c.outputs[-1] for c in code[:3]]  # the trace, the analysis, the watch handle: each its cell's last value
    for out, heading in zip(shown, ("Trace(lstm", "Analysis(srn, lstm, gru on digit-sum", "Watch(")):
        assert out.output_type == "execute_result"
        assert out.data["image/png"] and 'src="data:image/png;base64,' in out.data["text/html"]
        assert "decay factor per step" in out.data["text/html"] and heading in out.data["text/html"]
