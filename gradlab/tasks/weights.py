"""Problems on disk: weights with the configuration that rebuilds them.

Two files, both one ``torch.save`` holding only plain values and tensors, so they load with
``torch.load(weights_only=True)`` (no pickled code runs), both written whole or not at all:

- a *checkpoint* (``gradlab train``'s ``checkpoint.pt``): one trained problem, its training config
  and ``info`` (the step and dev score of these weights);
- a *problem set* (``gradlab analyze``'s ``models.pt``): several problems by model name.

Each problem is stored as {"config": what rebuilds it (``SequenceProblem.rebuild_config``), "state_dict": its
weights};
one function rebuilds it, whichever file it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from gradlab.common.files import atomic_write
from gradlab.tasks import TASKS
from gradlab.tasks.problem import SequenceProblem, build_problem

CHECKPOINT, PROBLEM_SET = "gradlab-checkpoint", "gradlab-problems"
VERSION = 1


def problem_entry(problem: SequenceProblem, config: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """{"config", "state_dict"} of one problem: ``config`` (e.g. how it was trained) with what
    rebuilds it taken from the problem itself."""
    return {"config": {**(config or {}), **problem.rebuild_config()},
            "state_dict": {k: v.detach().cpu() for k, v in problem.state_dict().items()}}


def rebuild(entry: dict[str, Any], device: str = "cpu", dtype: Optional[torch.dtype] = None) -> SequenceProblem:
    """The problem of a :func:`problem_entry` (in ``dtype`` if given, else the one it was saved in)."""
    cfg = entry["config"]
    problem = build_problem(cfg["model"], cfg["hidden"], cfg["layers"], seed=0,
                            dtype=dtype or getattr(torch, cfg["dtype"]), nonlinearity=cfg["nonlinearity"],
                            task=TASKS[cfg["task"]])
    problem.load_state_dict(entry["state_dict"])
    return problem.to(device)


def _save(path: Path, payload: dict, overwrite: bool) -> Path:
    return atomic_write(Path(path), lambda p: torch.save(payload, p), overwrite=overwrite)


def _load(path: Path, fmt: str, what: str) -> dict:
    if Path(path).is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass the {what} file inside it")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not one of ours
        raise ValueError(f"{path}: not a gradlab {what} ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise ValueError(f"{path}: not a gradlab {what}")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: {what} version {payload.get('version')}, this gradlab reads {VERSION}")
    return payload


def save_checkpoint(path: Path, problem: SequenceProblem, config: dict[str, Any], info: dict[str, Any],
                    overwrite: bool = False) -> Path:
    """Write ``problem``'s weights with the training ``config`` and ``info``."""
    payload = {"format": CHECKPOINT, "version": VERSION, "info": dict(info), **problem_entry(problem, config)}
    return _save(path, payload, overwrite)


#: The checkpoint's name inside a ``gradlab train`` run directory.
CHECKPOINT_FILE = "checkpoint.pt"


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[SequenceProblem, dict[str, Any], dict[str, Any]]:
    """(problem with the saved weights, training config, info) from a file ``save_checkpoint`` wrote,
    or from the ``gradlab train`` run directory that holds it."""
    if Path(path).is_dir():
        if not (Path(path) / CHECKPOINT_FILE).is_file():
            raise IsADirectoryError(f"{path} is a directory without {CHECKPOINT_FILE}; pass a gradlab train run "
                                    f"directory or its {CHECKPOINT_FILE}")
        path = Path(path) / CHECKPOINT_FILE
    payload = _load(path, CHECKPOINT, "checkpoint")
    return rebuild(payload, device), payload["config"], payload["info"]


def save_problems(path: Path, problems: dict[str, SequenceProblem], overwrite: bool = False) -> Path:
    """Write several problems, {name: problem}, into one file."""
    payload = {"format": PROBLEM_SET, "version": VERSION,
               "problems": {name: problem_entry(p) for name, p in problems.items()}}
    return _save(path, payload, overwrite)


def load_problems(path: Path, device: str = "cpu", dtype: Optional[torch.dtype] = None) -> dict[str, SequenceProblem]:
    """{name: problem} from a file ``save_problems`` wrote."""
    payload = _load(path, PROBLEM_SET, "problem set")
    return {name: rebuild(entry, device, dtype) for name, entry in payload["problems"].items()}
