"""Flag types and checks shared by every ``gradlab`` command: each bad value becomes exit status 2
and one line saying what is wrong and what is allowed."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from gradlab.models.recurrent import MODEL_CLASSES

USAGE_ERROR = 2


class UsageError(Exception):
    """A bad flag value found after parsing (e.g. CUDA asked for where there is none)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2, no usage block
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def three_counts(example: str):
    """A parser of "A,B,C": three integers >= 1 (e.g. train,dev,test sizes)."""
    def parse(text: str) -> tuple[int, int, int]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != 3 or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected three counts >= 1 for train,dev,test such as {example}, "
                                             f"got {text!r}")
        return values
    return parse


def model_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",")))
    bad = [n for n in names if n not in MODEL_CLASSES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model {', '.join(repr(b) for b in bad) or repr(text)}; choose from "
            f"{', '.join(MODEL_CLASSES)} or a comma list such as srn,lstm,gru")
    return names


def number(text: str, positive: bool) -> float:
    what = "a positive number" if positive else "a finite number"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def finite_float(text: str) -> float:
    return number(text, positive=False)


def positive_float(text: str) -> float:
    return number(text, positive=True)


def check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: cuda is not available here (torch {torch.__version__}); use --device cpu")


def check_out(out: Path) -> None:
    from gradlab.common.files import check_writable

    try:
        check_writable(out)
    except OSError as exc:
        raise UsageError(f"argument --out: cannot write runs under {str(out)!r}: {exc.strerror or exc}") from None
