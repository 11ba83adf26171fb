"""Options declared once: a config dataclass field carries its help, flag and parser.

    length: Optional[int] = option(None, "sequence length", flag="--len", parse=int_at_least(1),
                                   default_text="100")

From that one declaration come the command-line flag (``gradlab.cli`` builds its parsers from the
fields), its help with the default, and the check of a value given from Python: a config calls
:func:`check_options` in ``__post_init__``, so ``AnalyzeConfig(length=-1)`` fails with the same
words as ``gradlab analyze --len -1``. Every parser accepts the value as text or already typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


class InvalidOption(argparse.ArgumentTypeError, ValueError):
    """A value an option does not allow. ``field`` names the option (set by :func:`check_options`)."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


Parse = Callable[[Any], Any]


@dataclass(frozen=True)
class Option:
    help: str
    flag: Optional[str] = None  # default: "--" + the field name with "-" for "_"
    parse: Optional[Parse] = None  # text or value → the value, raising InvalidOption
    metavar: Optional[str] = None
    group: Optional[str] = None  # the help section the flag is listed under
    default_text: Optional[str] = None  # the default as the help states it, when the field's is None
    positional: bool = False


def option(default: Any, help: str, **kwargs) -> Any:
    """A dataclass field with its :class:`Option`."""
    return dataclasses.field(default=default, metadata={"option": Option(help, **kwargs)})


def options_of(config_cls) -> list[tuple[dataclasses.Field, Option]]:
    return [(f, f.metadata["option"]) for f in dataclasses.fields(config_cls) if "option" in f.metadata]


def flag_of(f: dataclasses.Field, opt: Option) -> str:
    return opt.flag or "--" + f.name.replace("_", "-")


def check_options(config) -> None:
    """Parse every option value of a (frozen) config in place; raise InvalidOption naming the field."""
    for f, opt in options_of(type(config)):
        value = getattr(config, f.name)
        if value is None or opt.parse is None:
            continue
        try:
            parsed = opt.parse(value)
        except InvalidOption as exc:
            raise InvalidOption(exc.message, f.name) from None
        object.__setattr__(config, f.name, parsed)


# -- parsers: each takes text (from a flag) or a value (from Python) ---------------------------------

def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(str(value).strip())


def int_at_least(minimum: int) -> Parse:
    def parse(value: Any) -> int:
        try:
            n = _as_int(value)
        except (TypeError, ValueError):
            raise InvalidOption(f"expected an integer >= {minimum}, got {value!r}") from None
        if n < minimum:
            raise InvalidOption(f"expected an integer >= {minimum}, got {n}")
        return n
    return parse


def int_between(low: int, high: int) -> Parse:
    """An integer in [low, high]."""
    def parse(value: Any) -> int:
        try:
            n = _as_int(value)
        except (TypeError, ValueError):
            raise InvalidOption(f"expected an integer from {low} to {high}, got {value!r}") from None
        if not low <= n <= high:
            raise InvalidOption(f"expected an integer from {low} to {high}, got {n}")
        return n
    return parse


#: A seed both torch (a signed 64-bit integer) and NumPy take.
seed_value = int_between(0, 2**63 - 1)


def number(positive: bool) -> Parse:
    what = "a positive number" if positive else "a finite number"

    def parse(value: Any) -> float:
        try:
            x = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            raise InvalidOption(f"expected {what}, got {value!r}") from None
        if not math.isfinite(x) or (positive and x <= 0):
            raise InvalidOption(f"expected {what}, got {value!r}")
        return x
    return parse


positive_float = number(positive=True)
finite_float = number(positive=False)


def choice(choices: Sequence[str]) -> Parse:
    """One of ``choices``, compared without regard to case."""
    allowed = {str(c).lower(): c for c in choices}

    def parse(value: Any) -> str:
        key = str(value).strip().lower()
        if key not in allowed:
            raise InvalidOption(f"invalid choice {value!r}; choose from {', '.join(map(str, choices))}")
        return allowed[key]
    return parse


def choice_list(choices: Sequence[str], example: str) -> Parse:
    """A comma list (or a sequence) of distinct ``choices``, without regard to case → a tuple."""
    one = choice(choices)
    allowed = {str(c).lower() for c in choices}

    def parse(value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        bad = [item for item in items if str(item).strip().lower() not in allowed]
        if bad:
            raise InvalidOption(f"invalid choice {', '.join(repr(b) for b in bad)}; choose from "
                                f"{', '.join(map(str, choices))} or a comma list such as {example}")
        names = tuple(dict.fromkeys(one(item) for item in items))
        if not names:
            raise InvalidOption(f"expected at least one of {', '.join(map(str, choices))}")
        return names
    return parse


#: Where a run computes: auto is CUDA where torch sees a device, else the CPU.
DEVICES = ("auto", "cpu", "cuda")


def device_name(value: Any) -> str:
    """auto, cpu or cuda (without regard to case) → the device a run computes on, cpu or cuda: auto
    picks cuda where ``torch.cuda.is_available()``, else cpu, so that a config records where it ran."""
    name = choice(DEVICES)(value)
    if name != "auto":
        return name
    import torch  # here, not at import: the options load before torch on the command line's cold path

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_option() -> Any:
    """The ``device`` field of a run's config (``gradlab analyze``, ``gradlab train``): cpu by default."""
    return option("cpu", "where the run computes; auto: cuda where there is a CUDA device, else cpu",
                  parse=device_name, metavar="|".join(DEVICES))


def counts(n: int, example: str, what: str) -> Parse:
    """``n`` integers >= 1 written "A,B,C" (or a sequence) → a tuple."""
    def parse(value: Any) -> tuple[int, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        try:
            values = tuple(_as_int(v) for v in items)
        except (TypeError, ValueError):
            values = ()
        if len(values) != n or min(values) < 1:
            raise InvalidOption(f"expected {n} counts >= 1 for {what} such as {example}, got {value!r}")
        return values
    return parse


def path_text(value: Any) -> str:
    """A path, kept as text; the empty text is refused (it would mean the current directory)."""
    text = str(value)
    if not text.strip():
        raise InvalidOption("expected a path, got an empty one")
    return text
