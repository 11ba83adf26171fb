"""Running a sweep on Dask distributed: the tasks go to a LocalCluster on this machine (by default)
or to any Dask scheduler; results travel back to this process, which writes the sweep directory:

    OUT/sweep.json   the specification, versions, and every task's state ("finished", "failed": why)
    OUT/runs/NAME/   one run directory per finished task, the files analyze or train write, whole
    OUT/sweep.csv    one row per setting: seeds, mean, std and 95 % interval of each metric
    OUT/*.png/pdf/json  the metrics against the varied setting, with error bars

Run again on the same directory with the same specification, it keeps the finished runs and runs the
rest; a different specification is refused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from tqdm.auto import tqdm

from gradlab.common.files import atomic_write, write_json
from gradlab.common.versions import versions
from gradlab.sweep.spec import SpecError, Task, tasks_of, varied
from gradlab.sweep.summary import write_summary
from gradlab.sweep.tasks import config_of, run_task

SWEEP_FILE, RUNS, TABLE = "sweep.json", "runs", "sweep.csv"
FORMAT = "gradlab-sweep"


@dataclass
class SweepOutcome:
    directory: Path
    ran: int  # tasks run now
    kept: int  # finished runs found and kept
    failed: dict[str, str]  # task name → reason


def plan(command: str, argv: Sequence[str]) -> list[Task]:
    """The tasks, each checked by its command's config (SpecError: the one line to show)."""
    tasks = tasks_of(argv)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise SpecError("two tasks would share a run directory name; give the varied values distinct spellings")
    for t in tasks:
        config_of(command, t)
    return tasks


def _spec(command: str, tasks: Sequence[Task]) -> dict:
    return {"command": command, "tasks": [t.argv for t in tasks]}


def open_sweep(out: Path, command: str, tasks: Sequence[Task]) -> dict:
    """The sweep.json of ``out``: created, or read back when it describes this same sweep."""
    spec = _spec(command, tasks)
    path = out / SWEEP_FILE
    if path.exists():
        try:
            state = json.loads(path.read_text())
        except ValueError:
            raise SpecError(f"argument --out: {path} is not readable; not a sweep directory") from None
        if state.get("format") != FORMAT or state.get("spec") != spec:
            raise SpecError(f"argument --out: {out} holds a different sweep; give a new directory")
        return state
    if out.exists() and not out.is_dir():
        raise SpecError(f"argument --out: {out} is a file, not a directory")
    if out.exists() and any(out.iterdir()):
        raise SpecError(f"argument --out: {out} is not empty and holds no sweep; give a new directory")
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "spec": spec, "versions": versions(), "tasks": {}}
    atomic_write(path, lambda p: write_json(p, state))
    return state


def _write_run(out: Path, task: Task, result: dict) -> None:
    """The run's files into a staging directory, renamed into runs/NAME when all are there."""
    final = out / RUNS / task.name
    staging = Path(tempfile.mkdtemp(dir=out / RUNS, prefix=f".{task.name}.partial-"))
    try:
        for rel, data in result["files"].items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_bytes(data)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def run_sweep(command: str, argv: Sequence[str], out: Path, workers: int = 2, scheduler: Optional[str] = None,
              progress: bool = True) -> SweepOutcome:
    from dask.distributed import Client, LocalCluster, as_completed

    tasks = plan(command, argv)
    out = Path(out)
    state = open_sweep(out, command, tasks)
    done = [t for t in tasks if (out / RUNS / t.name).is_dir()]
    todo = [t for t in tasks if t not in done]
    failed: dict[str, str] = {}
    if todo:
        cores = os.cpu_count() or 1
        if scheduler is None:
            # silence_logs: the workers' own chatter (a heartbeat racing the shutdown logs a traceback);
            # a task's failure still comes back through its future. dashboard ":0": a free port (None
            # still binds 8787 and warns when another cluster holds it)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   silence_logs=logging.CRITICAL)
            client, threads = Client(cluster), max(1, cores // workers)
        else:
            cluster, client, threads = None, Client(scheduler, timeout="30s"), 1
        try:
            futures = {client.submit(run_task, command, t, threads, pure=False, retries=2): t for t in todo}
            bar = tqdm(total=len(todo), desc="sweep", unit="task", disable=not progress)
            for future in as_completed(futures):
                task = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # the task's worker died more often than Dask retries
                    result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
                if result["status"] == "finished":
                    _write_run(out, task, result)
                    state["tasks"][task.name] = {"status": "finished", "dir": f"{RUNS}/{task.name}"}
                else:
                    failed[task.name] = result["reason"]
                    state["tasks"][task.name] = {"status": "failed", "reason": result["reason"]}
                atomic_write(out / SWEEP_FILE, lambda p: write_json(p, state), overwrite=True)
                bar.update()
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    write_summary(out, command, tasks, varied(tasks))
    return SweepOutcome(out, ran=len(todo), kept=len(done), failed=failed)
