"""Trained models on disk: the problem's weights with the configuration that rebuilds it.

A checkpoint is one ``torch.save`` file holding only plain values and tensors, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). It is written whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gradlab.tasks.problem import SequenceProblem, build_problem
from gradlab.common.files import atomic_write
from gradlab.tasks import TASKS

FORMAT = "gradlab-checkpoint"
VERSION = 1
_REBUILD = ("model", "task", "hidden", "layers", "nonlinearity", "dtype")


def save_checkpoint(path: Path, problem: SequenceProblem, config: dict[str, Any], info: dict[str, Any],
                    overwrite: bool = False) -> Path:
    """Write ``problem``'s weights with the training ``config`` (needs the keys of ``_REBUILD``)
    and ``info`` (e.g. the step and dev score of these weights)."""
    missing = [k for k in _REBUILD if k not in config]
    if missing:
        raise ValueError(f"the config lacks {missing}")
    payload = {"format": FORMAT, "version": VERSION, "config": dict(config), "info": dict(info),
               "state_dict": {k: v.detach().cpu() for k, v in problem.state_dict().items()}}
    return atomic_write(Path(path), lambda p: torch.save(payload, p), overwrite=overwrite)


def load_checkpoint(path: Path, device: str = "cpu") -> tuple[SequenceProblem, dict[str, Any], dict[str, Any]]:
    """(problem with the saved weights, training config, info) from a file ``save_checkpoint`` wrote."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise ValueError(f"{path}: not a gradlab checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gradlab checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')}, this gradlab reads {VERSION}")
    cfg = payload["config"]
    problem = build_problem(cfg["model"], cfg["hidden"], cfg["layers"], seed=0, dtype=getattr(torch, cfg["dtype"]),
                            nonlinearity=cfg["nonlinearity"], task=TASKS[cfg["task"]])
    problem.load_state_dict(payload["state_dict"])
    return problem.to(device), cfg, payload["info"]
