"""One task of a sweep: the command's config built from its flags (checked on the client before the
sweep starts), and the run itself on a Dask worker, which returns the run directory's files as bytes
(no shared filesystem is assumed; the client writes them)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gradlab.common.options import InvalidOption, flag_of, options_of
from gradlab.sweep.spec import SpecError, Task

COMMANDS = ("analyze", "train")


def config_class(command: str):
    if command == "analyze":
        from gradlab.analysis.pipeline import AnalyzeConfig
        return AnalyzeConfig
    if command == "train":
        from gradlab.training.loop import TrainConfig
        return TrainConfig
    raise SpecError(f"invalid command {command!r}; choose from {', '.join(COMMANDS)}")


def config_of(command: str, task: Task):
    """The resolved config of ``task``: each flag onto its declared option, as the command line does."""
    cls = config_class(command)
    by_flag = {flag_of(f, opt): (f, opt) for f, opt in options_of(cls) if not opt.positional}
    values: dict[str, Any] = {}
    for flag, value in task.settings:
        if flag == "--out":
            raise SpecError("argument --out: the sweep directory is the sweep's own --out")
        if flag not in by_flag:
            raise SpecError(f"argument {flag}: not a flag of gradlab {command} (see 'gradlab {command} --help')")
        f, _ = by_flag[flag]
        values[f.name] = True if f.type in (bool, "bool") else value
    try:
        return cls(**values).resolved()
    except InvalidOption as exc:
        where = next((fl for fl, (f, _) in by_flag.items() if f.name == exc.field), exc.field)
        raise SpecError(f"task {task.name}: argument {where}: {exc.message}") from None


def run_task(command: str, task: Task, threads: int) -> dict[str, Any]:
    """On a worker: run the task into a temporary directory with ``threads`` torch threads.
    Returns {"status": "finished", "dir": name, "files": {relative path: bytes}} or {"status":
    "failed", "reason": one line}."""
    import torch

    torch.set_num_threads(threads)
    try:
        cfg = config_of(command, task)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            if command == "analyze":
                from gradlab.analysis.pipeline import analyze
                from gradlab.runs.analysis_run import write_run

                run_dir = write_run(analyze(cfg, progress=False), out)
            else:
                from gradlab.runs.training_run import write_train_run
                from gradlab.training.loop import train

                result = train(cfg, progress=False)
                if result.diverged:
                    return {"status": "failed", "reason": f"training stopped at {result.diverged}"}
                run_dir = write_train_run(result, out)
            files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
        return {"status": "finished", "dir": run_dir.name, "files": files}
    except (SpecError, ValueError, RuntimeError, FloatingPointError) as exc:  # a bad setting or a failing run
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
