"""A watch's run directory: one file per recorded step and module, and an index, each written whole.

    <out>/<time>_watch/
        watch.json                 the index: format, modules, sampling, and every finished step
        step-00000010.rnn.npz      the Trace of module "rnn" at step 10 (gradlab.Trace.save's format)
        step-00000010.json         that step's summary: per module, state, layer and direction the
                                   batch statistics of log10 ‖∂L/∂s‖ against distance, the fitted
                                   decay factor and the horizon (gradlab/watch/summary.py)

After each recorded step the watch writes that step's traces, then rewrites the index; every file
is written to a hidden temporary name and renamed into place. A training process killed at any
moment leaves every step the index names complete and readable; a write it was in the middle of is
a hidden ``.*`` file that :func:`load_watch` ignores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

from gradlab.common.files import atomic_write, growing_run_dir, write_json
from gradlab.common.versions import versions
from gradlab.engine.trace import Trace
from gradlab.watch.steps import StepTraces
from gradlab.watch.summary import step_summary

FORMAT, VERSION = "gradlab-watch", 1
INDEX = "watch.json"


def step_file(step: int, name: str) -> str:
    return f"step-{step:08d}.{name or 'model'}.npz"


def summary_file(step: int) -> str:
    return f"step-{step:08d}.json"


class RunDirectory:
    """Where a watch writes: a fresh directory under ``out``, growing by one file per step and module."""

    def __init__(self, out: Union[str, Path], modules: list[str], every: int, start_step: int) -> None:
        self.path = growing_run_dir(Path(out), "watch")
        self.index = {"format": FORMAT, "version": VERSION, "modules": modules, "every": every,
                      "start_step": start_step, "versions": versions(), "steps": []}
        self._write_index()

    def _write_index(self) -> None:
        atomic_write(self.path / INDEX, lambda p: write_json(p, self.index), overwrite=True)

    def write(self, step: int, traces: dict[str, Trace]) -> None:
        """Write one finished step: its traces and summary first, then the index that names them."""
        files = {}
        for name, trace in traces.items():
            files[name] = step_file(step, name)
            trace.save(self.path / files[name])
        atomic_write(self.path / summary_file(step), lambda p: write_json(p, step_summary(traces)))
        self.index["steps"].append({"step": step, "files": files, "summary": summary_file(step)})
        self._write_index()


def load_watch(run_dir: Union[str, Path]) -> list[StepTraces]:
    """The steps a watch's run directory holds, as the watch had them: a list of StepTraces."""
    run_dir = Path(run_dir)
    index_path = run_dir / INDEX if run_dir.is_dir() else run_dir
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{run_dir}: not a gradlab watch run directory ({exc})") from None
    if index.get("format") != FORMAT:
        raise ValueError(f"{run_dir}: not a gradlab watch run directory")
    steps = []
    for entry in index["steps"]:
        traces = StepTraces(entry["step"])
        for name, file in entry["files"].items():
            try:
                traces[name] = Trace.load(index_path.parent / file)
            except FileNotFoundError:
                raise ValueError(f"{index_path.parent / file}: missing; the watch's index lists it") from None
        steps.append(traces)
    return steps
