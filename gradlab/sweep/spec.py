"""A sweep's specification: the command's own flags, where a flag given several values varies.

    --len 10,15,20        a comma list           --seed 0-4      an integer range (inclusive)
    --sizes "100,20,20;200,40,40"  alternatives of a flag whose one value is itself a list, by ";"
    --model srn,lstm      one task per model (analyze takes one model per task here)

The Cartesian product of the varied flags gives the tasks; every task's flags are checked by the
command's own parser and config before anything runs, so a bad value is refused in one line.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Sequence

#: Flags whose single value is itself a comma list: their alternatives are separated by ";".
LIST_FLAGS = {"--sizes"}
#: Spellings a sweep accepts for a command's flag.
ALIASES = {"--seeds": "--seed", "--models": "--model", "--lengths": "--len"}
RANGE = re.compile(r"^(-?\d+)-(-?\d+)$")
#: Flags of the sweep itself, not of the command.
OWN_FLAGS = {"--out", "--workers", "--scheduler", "--quiet"}


class SpecError(ValueError):
    """A sweep specification that cannot run; the message is the one line to show."""


@dataclass(frozen=True)
class Task:
    """One run of the sweep: its settings (flag → value, in the order given), the command's argv, and
    the flags its name shows (the varied ones; every flag when none is)."""

    settings: tuple[tuple[str, str], ...]
    named_by: tuple[str, ...] = ()

    @property
    def argv(self) -> list[str]:
        return [x for flag, value in self.settings for x in ((flag,) if value == "" else (flag, value))]

    @property
    def name(self) -> str:
        """A directory name that says the task's varied settings, e.g. "model=lstm_len=20_seed=3"."""
        shown = [(f, v) for f, v in self.settings if not self.named_by or f in self.named_by]
        parts = [f"{flag.lstrip('-')}={value}" for flag, value in shown if value != ""]
        parts += [flag.lstrip("-") for flag, value in shown if value == ""]
        return re.sub(r"[^A-Za-z0-9=._,+-]", "_", "_".join(parts)) or "default"

    def without(self, flag: str) -> tuple[tuple[str, str], ...]:
        return tuple((f, v) for f, v in self.settings if f != flag)


def split_flags(argv: Sequence[str]) -> list[tuple[str, str]]:
    """["--len", "10,20", "--quiet"] → [("--len", "10,20"), ("--quiet", "")] (a flag without a value
    is a switch); "--flag=value" is accepted too."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise SpecError(f"expected a flag, got {token!r}")
        if "=" in token:
            flag, value = token.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            flag, value = token, argv[i + 1]
            i += 2
        else:
            flag, value = token, ""
            i += 1
        flag = ALIASES.get(flag, flag)
        if any(f == flag for f, _ in out):
            raise SpecError(f"argument {flag}: given twice")
        out.append((flag, value))
    return out


def alternatives(flag: str, value: str) -> list[str]:
    """The values a flag takes across the sweep."""
    if value == "":
        return [""]
    if flag in LIST_FLAGS:
        values = [v.strip() for v in value.split(";")]
    elif "," in value:
        values = [v.strip() for v in value.split(",")]
    elif RANGE.match(value):
        lo, hi = map(int, RANGE.match(value).groups())
        if hi < lo:
            raise SpecError(f"argument {flag}: the range {value} is empty (write LOW-HIGH with LOW <= HIGH)")
        values = [str(v) for v in range(lo, hi + 1)]
    else:
        values = [value]
    if any(v == "" for v in values) or len(set(values)) != len(values):
        raise SpecError(f"argument {flag}: {value!r} has an empty or repeated alternative")
    return values


def tasks_of(argv: Sequence[str]) -> list[Task]:
    """Every task of the sweep, the first flag varying slowest."""
    flags = split_flags(argv)
    choices = [[(flag, v) for v in alternatives(flag, value)] for flag, value in flags]
    named_by = tuple(options[0][0] for options in choices if len(options) > 1)
    return [Task(tuple(combo), named_by) for combo in itertools.product(*choices)]


def varied(tasks: Sequence[Task]) -> list[str]:
    """The flags whose value differs between tasks."""
    if not tasks:
        return []
    return [flag for flag, _ in tasks[0].settings if len({dict(t.settings)[flag] for t in tasks}) > 1]
