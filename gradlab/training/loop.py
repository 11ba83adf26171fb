"""``gradlab train``: train a model on a task, watching its gradients.

The recurrent model trains as torch's fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (the same weights,
torch's names; a linear SRN, which torch lacks, trains as gradlab's unrolled model and
``TrainResult.engine`` says so). At every step the L2 norm of each parameter's gradient is logged
before clipping (NNDL 6.2); every ``eval_every`` steps (and at the end) the dev set is scored and
the best weights kept; every ``trace_every`` steps (and at step 0 and the end) the total gradient
∂L/∂h_t (and ∂L/∂c_t) is recorded with ``gradlab.watch`` on one backward pass over a fixed dev
batch (its parameter gradients are discarded), so the decay curve is compared on the same examples
through training. The best weights are scored on the test set at the end.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from gradlab.analysis.footprint import refuse_beyond_memory, training_bytes
from gradlab.analysis.metrics import decay_profile
from gradlab.common.options import (InvalidOption, check_options, choice, counts, device_option, int_at_least, option,
                                    path_text, positive_float, seed_value)
from gradlab.models.architectures import NONLINEARITIES
from gradlab.models.convert import to_torch
from gradlab.models.recurrent import MODEL_CLASSES, RecurrentModel, takes_nonlinearity
from gradlab.models.regimes import INITS, initialise
from gradlab.tasks import DEFAULT_SIZES, TASKS, datasets
from gradlab.tasks.base import Dataset
from gradlab.tasks.problem import LOSS_AT, SequenceProblem, build_problem
from gradlab.training.clipping import CLIP_MODES, clip_gradients, gradient_norms
from gradlab.training.scoring import Score, as_batches, score
from gradlab.watch.handle import watch

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


CLIPPING = "clipping: gradient norms are logged before clipping"


@dataclass(frozen=True)
class TrainConfig:
    """What ``gradlab train`` trains. Defaults are the NNDL book's digit-sum settings (6.1.3),
    except the initialisation; fields left None are resolved by :meth:`resolved`."""

    model: str = option("lstm", "the architecture", parse=choice(tuple(MODEL_CLASSES)), metavar="|".join(MODEL_CLASSES))
    task: str = option("digit-sum", "the task", parse=choice(tuple(TASKS)), metavar="|".join(TASKS))
    length: Optional[int] = option(None, "sequence length", flag="--len", parse=int_at_least(1), metavar="N",
                                   default_text="the task's: digit-sum 10, copy 30, image tasks their height")
    hidden: int = option(32, "hidden units", parse=int_at_least(1), metavar="H")
    layers: int = option(1, "stacked layers", parse=int_at_least(1), metavar="K")
    nonlinearity: str = option("tanh", "the SRN's nonlinearity (SRN only)", parse=choice(NONLINEARITIES),
                               metavar="|".join(NONLINEARITIES))
    init: str = option("default", "torch's default, 'nndl' (the book's Xavier-uniform, one bias) or a regime",
                       parse=choice(INITS), metavar="|".join(INITS))
    gain: Optional[float] = option(None, "rescale every block of W_hh to spectral radius G (as in gradlab analyze)",
                                   parse=positive_float, metavar="G")
    epochs: Optional[int] = option(None, "passes over the training set", parse=int_at_least(1), metavar="E",
                                   default_text="500")
    steps: Optional[int] = option(None, "train N steps instead of --epochs", parse=int_at_least(1), metavar="N")
    batch: int = option(8, "batch size", parse=int_at_least(1), metavar="B")
    lr: float = option(1e-3, "learning rate", parse=positive_float, metavar="LR")
    optimizer: str = option("adam", "the optimiser", parse=choice(tuple(OPTIMIZERS)), metavar="|".join(OPTIMIZERS))
    clip: str = option("none", "none, global (all gradients together) or per-param (each on its own, as Paddle's "
                               "ClipGradByNorm in the book)", parse=choice(CLIP_MODES), metavar="|".join(CLIP_MODES),
                       group=CLIPPING)
    clip_norm: float = option(5.0, "the largest norm clipping allows", parse=positive_float, metavar="C", group=CLIPPING)
    reduction: str = option("mean", "the loss over the batch: mean (book 6.1) or sum (book 6.2)",
                            parse=choice(("mean", "sum")), metavar="mean|sum")
    loss_at: str = option("last", "the loss reads the last step or every step", parse=choice(LOSS_AT),
                          metavar="|".join(LOSS_AT))
    seed: int = option(0, "seed for data, weights and order", parse=seed_value, metavar="S")
    shuffle: bool = option(False, "shuffle the training set every epoch (the book does not)")
    eval_every: int = option(100, "score the dev set every N steps", parse=int_at_least(1), metavar="N")
    trace_every: int = option(0, "record the gradient decay every N steps; 0: never", parse=int_at_least(0), metavar="N")
    trace_batch: int = option(32, "dev examples the traces use", parse=int_at_least(1), metavar="B")
    sizes: Optional[tuple[int, int, int]] = option(
        None, "examples per split for generated tasks", parse=counts(3, "1000,200,200", "train,dev,test"),
        metavar="TRAIN,DEV,TEST", default_text="the book's sets for digit-sum (multiples of 100: the book's "
                                                "construction, each digit pair size/100 times), else 10000,1000,1000")
    data_dir: Optional[str] = option(None, "read the data: digit-sum files written by 'gradlab data', or MNIST's "
                                           "idx files", flag="--data", parse=path_text, metavar="DIR")
    dtype: str = option("float32", "floating-point type of the run", parse=choice(("float32", "float64")),
                        metavar="float32|float64")
    device: str = device_option()
    out: str = option("runs", "where the run directory is created; earlier runs are never overwritten",
                      parse=path_text, metavar="DIR")

    def __post_init__(self) -> None:
        check_options(self)

    def resolved(self) -> "TrainConfig":
        """Every field filled (the length from the task, epochs 500 unless steps are given) and the
        combination checked against the task. Raises InvalidOption naming the field."""
        task = TASKS[self.task]
        cfg = replace(self, length=self.length or task.fixed_length or task.default_length)
        try:
            task.check_length(cfg.length)
        except ValueError as exc:
            raise InvalidOption(str(exc), "length") from None
        if cfg.steps is not None and cfg.epochs is not None:
            raise InvalidOption("steps replaces epochs; give one of them", "steps")
        if cfg.steps is None and cfg.epochs is None:
            cfg = replace(cfg, epochs=500)
        if cfg.nonlinearity != "tanh" and not takes_nonlinearity(cfg.model):
            raise InvalidOption(f"applies to the SRN only, not the {cfg.model}", "nonlinearity")
        if cfg.sizes is not None and (task.load is not None or cfg.data_dir is not None):
            raise InvalidOption("the data is read from files, whose sizes are fixed", "sizes")
        if cfg.data_dir is not None and task.make is not None and task.name != "digit-sum":
            raise InvalidOption(f"{task.name} is generated, not read from files", "data_dir")
        examples = sum(cfg.sizes) if cfg.sizes is not None else sum(DEFAULT_SIZES.values())
        itemsize = 8 if cfg.dtype == "float64" else 4
        refuse_beyond_memory(training_bytes(cfg.length, examples, cfg.batch, cfg.hidden, cfg.layers, itemsize))
        return cfg

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
    engine: str = ""  # what the recurrent model trained as


def load_data(cfg: TrainConfig) -> dict[str, Dataset]:
    """The train, dev and test sets ``cfg`` (resolved) asks for. Missing files, a missing optional
    extra or data of another length raise InvalidOption naming the field to change."""
    sizes = None if cfg.sizes is None else dict(zip(("train", "dev", "test"), cfg.sizes))
    try:
        data = datasets(TASKS[cfg.task], cfg.length, cfg.seed, sizes, cfg.data_dir)
    except (FileNotFoundError, ImportError, ValueError) as exc:  # missing files, optional extra, bad lines
        raise InvalidOption(str(exc), "data_dir" if cfg.data_dir else "task") from None
    if len(data["train"][1]) == 0 or data["train"][0].shape[1] != cfg.length:
        raise InvalidOption(f"the data has sequences of {data['train'][0].shape[1]} steps, not {cfg.length}", "length")
    return data


def make_problem(cfg: TrainConfig) -> SequenceProblem:
    problem = build_problem(cfg.model, cfg.hidden, cfg.layers, cfg.seed, getattr(torch, cfg.dtype), cfg.device,
                            cfg.nonlinearity, TASKS[cfg.task])
    initialise(problem.model, cfg.init, cfg.gain, seed=cfg.seed)
    return problem


def gradient_profile(problem: SequenceProblem, data: Dataset, loss_at: str) -> dict[str, list[float]]:
    """log10 of the batch-mean ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against distance from the last step, from
    one watched backward pass of the problem's loss on ``data``; the parameters' ``.grad`` are left
    as they were."""
    x, y = (torch.as_tensor(a, device=problem.readout.weight.device) for a in data)
    saved = [(p, p.grad) for p in problem.parameters()]
    for p, _ in saved:
        p.grad = None
    with watch(problem) as w:
        problem.loss_fn(y, loss_at)(problem.model(problem.embed(x))[0]).backward()
    for p, grad in saved:
        p.grad = grad
    trace = w.traces[0]["model"]
    return {name: decay_profile(trace.log10_grad_norms(name), trace.grad_norms(name)).log10_mean.tolist()
            for name in trace.names}


def fused_if_possible(model: RecurrentModel) -> tuple[torch.nn.Module, str]:
    """torch's fused module with ``model``'s weights, or ``model`` itself where torch has none; and
    a line saying which."""
    try:
        fused = to_torch(model)
    except ValueError:  # the linear SRN
        return model, f"gradlab's unrolled {type(model).__name__} (torch has no such module)"
    return fused, f"torch.nn.{type(fused).__name__} (fused kernels)"


def train(cfg: TrainConfig, data: Optional[dict[str, Dataset]] = None, progress: bool = True,
          fused: bool = True) -> TrainResult:
    """Train one model as ``cfg`` says and return its history, traces and test score.

    fused: train the recurrent model as torch's fused module (the default); False trains gradlab's
    unrolled model, as gradlab did before (benchmarks/train_command.py compares the two). The
    result's problem holds gradlab's model either way."""
    cfg = cfg.resolved()
    data = load_data(cfg) if data is None else data
    problem = make_problem(cfg)
    model = problem.model
    problem.model, engine = fused_if_possible(model) if fused else (model, f"gradlab's unrolled {type(model).__name__}")
    try:
        result = _train(cfg, data, problem, progress)
    finally:
        model.load_state_dict(problem.model.state_dict())  # the best weights, back in gradlab's model
        problem.model = model
    result.engine = engine
    return result


def _train(cfg: TrainConfig, data: dict[str, Dataset], problem: SequenceProblem, progress: bool) -> TrainResult:
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
