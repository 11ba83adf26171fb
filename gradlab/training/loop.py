"""``gradlab train``: train a model on a task, watching its gradients.

At every step the L2 norm of each parameter's gradient is logged before clipping (NNDL 6.2); every
``eval_every`` steps (and at the end) the dev set is scored and the best weights kept; every
``trace_every`` steps (and at step 0) the total gradient ∂L/∂h_t (and ∂L/∂c_t) is recorded on a fixed
batch, so the decay curve can be watched changing through training. The best weights are scored on
the test set at the end.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.training.clipping import clip_gradients, gradient_norms
from gradlab.models.regimes import initialise
from gradlab.analysis.metrics import decay_profile
from gradlab.tasks.problem import SequenceProblem, build_problem
from gradlab.engine.record import record
from gradlab.training.scoring import Score, as_batches, score
from gradlab.tasks import TASKS, datasets
from gradlab.tasks.base import Dataset

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the NNDL book's digit-sum settings (6.1.3), except the initialisation."""

    model: str = "lstm"
    task: str = "digit-sum"
    length: int = 10
    hidden: int = 32
    layers: int = 1
    nonlinearity: str = "tanh"
    init: str = "default"  # gradlab.models.regimes.INITS; "nndl" is the book's Xavier-uniform
    gain: Optional[float] = None  # rescale every block of W_hh to this spectral radius
    epochs: int = 500
    steps: Optional[int] = None  # if set, replaces epochs
    batch: int = 8
    lr: float = 1e-3
    optimizer: str = "adam"
    clip: str = "none"
    clip_norm: float = 5.0
    reduction: str = "mean"  # the book's 6.2 sums
    loss_at: str = "last"
    seed: int = 0
    shuffle: bool = False  # the book does not shuffle
    eval_every: int = 100
    trace_every: int = 0  # 0: no traces
    trace_batch: int = 32
    sizes: Optional[tuple[int, int, int]] = None  # train, dev, test examples; None: the task's default
    data_dir: Optional[str] = None
    dtype: str = "float32"
    device: str = "cpu"

    def total_steps(self, train_size: int) -> int:
        return self.steps if self.steps is not None else self.epochs * math.ceil(train_size / self.batch)


@dataclass
class TrainResult:
    config: TrainConfig
    problem: SequenceProblem  # with the best dev weights
    history: dict[str, list] = field(default_factory=dict)  # per step: step, epoch, loss, grad norms
    evals: list[dict] = field(default_factory=list)  # step, dev metric, dev loss, best so far
    traces: list[dict] = field(default_factory=list)  # step, {name: log10 mean ‖∂L/∂s_t‖ by distance}
    best_step: int = 0
    best_dev: Optional[Score] = None
    test: Optional[Score] = None
    chance: float = 0.0
    seconds: float = 0.0
    diverged: Optional[str] = None  # "step N: the loss overflowed float32" when training stopped there


def load_data(cfg: TrainConfig) -> dict[str, Dataset]:
    sizes = None if cfg.sizes is None else dict(zip(("train", "dev", "test"), cfg.sizes))
    return datasets(TASKS[cfg.task], cfg.length, cfg.seed, sizes, cfg.data_dir)


def make_problem(cfg: TrainConfig) -> SequenceProblem:
    problem = build_problem(cfg.model, cfg.hidden, cfg.layers, cfg.seed, getattr(torch, cfg.dtype), cfg.device,
                            cfg.nonlinearity, TASKS[cfg.task])
    initialise(problem.model, cfg.init, cfg.gain, seed=cfg.seed)
    return problem


def gradient_profile(problem: SequenceProblem, data: Dataset, loss_at: str) -> dict[str, list[float]]:
    """log10 of the batch-mean ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against distance from the last step."""
    x, y = (torch.as_tensor(a, device=problem.readout.weight.device) for a in data)
    trace = record(problem.model, problem.embed(x), problem.loss_fn(y, loss_at), full=False)
    return {name: decay_profile(trace.log10_grad_norms(name), trace.grad_norms(name)).log10_mean.tolist()
            for name in trace.names}


def train(cfg: TrainConfig, data: Optional[dict[str, Dataset]] = None, progress: bool = True) -> TrainResult:
    """Train one model as ``cfg`` says and return its history, traces and test score."""
    data = load_data(cfg) if data is None else data
    problem = make_problem(cfg)
    named = [(n, p) for n, p in problem.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    optimizer = OPTIMIZERS[cfg.optimizer](params, lr=cfg.lr)
    train_set = data["train"]
    total = cfg.total_steps(len(train_set[1]))
    n_trace = min(cfg.trace_batch, len(data["dev"][1]))
    trace_set = (data["dev"][0][:n_trace], data["dev"][1][:n_trace])
    order_rng = np.random.default_rng(cfg.seed)
    result = TrainResult(cfg, problem, chance=TASKS[cfg.task].chance)
    history = result.history
    best_state = copy.deepcopy(problem.state_dict())
    started = time.perf_counter()
    step = epoch = 0
    bar = tqdm(total=total, desc=f"train {cfg.model} on {cfg.task} (T={cfg.length})", unit="step", disable=not progress)
    while step < total:
        order = order_rng.permutation(len(train_set[1])) if cfg.shuffle else np.arange(len(train_set[1]))
        for x_np, y_np in as_batches(train_set, cfg.batch, order):
            if cfg.trace_every and step % cfg.trace_every == 0:
                result.traces.append({"step": step, "profile": gradient_profile(problem, trace_set, cfg.loss_at)})
            x = torch.as_tensor(x_np, device=cfg.device)
            y = torch.as_tensor(y_np, device=cfg.device)
            problem.train()
            optimizer.zero_grad(set_to_none=True)
            output = problem(x)
            loss = problem.loss_of(output, y, 0, output.shape[0], cfg.loss_at, cfg.reduction)
            if not torch.isfinite(loss):  # overflow: stop, keep the best weights so far
                result.diverged = f"step {step + 1}: the loss overflowed {cfg.dtype}"
                break
            loss.backward()
            norms = gradient_norms(named)  # before clipping
            clip_gradients(params, cfg.clip, cfg.clip_norm)
            optimizer.step()
            step += 1
            _log(history, step=step, epoch=epoch, loss=float(loss.detach()), **{f"grad_norm/{n}": v for n, v in norms.items()})
            if step % cfg.eval_every == 0 or step == total:
                dev = score(problem.eval(), data["dev"], loss_at=cfg.loss_at)
                if dev.better_than(result.best_dev):
                    result.best_dev, result.best_step = dev, step
                    best_state = copy.deepcopy(problem.state_dict())
                result.evals.append({"step": step, f"dev_{dev.metric}": dev.value, "dev_loss": dev.loss,
                                     "best_step": result.best_step})
                bar.set_postfix({f"dev {dev.metric}": f"{dev.value:.3f}", "best": result.best_step})
            bar.update(1)
            if step == total:
                break
        if result.diverged:
            break
        epoch += 1
    bar.close()
    if cfg.trace_every and not result.diverged:
        result.traces.append({"step": step, "profile": gradient_profile(problem, trace_set, cfg.loss_at)})
    problem.load_state_dict(best_state)
    if result.best_dev is None:  # stopped before the first dev evaluation: the initial weights
        result.best_dev = score(problem.eval(), data["dev"], loss_at=cfg.loss_at)
    result.test = score(problem.eval(), data["test"], loss_at=cfg.loss_at)
    result.seconds = time.perf_counter() - started
    return result


def _log(history: dict[str, list], **row) -> None:
    for key, value in row.items():
        history.setdefault(key, []).append(value)
