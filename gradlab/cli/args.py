"""What every ``gradlab`` command shares: its parser's one-line errors, the flags built from a
config dataclass's declared options, and the checks of the machine (device, output directory).

Every bad value becomes exit status 2 and one line saying what is wrong and what is allowed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gradlab.common.options import InvalidOption, flag_of, options_of

USAGE_ERROR = 2


class UsageError(Exception):
    """A bad flag value found after parsing (e.g. CUDA asked for where there is none)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2, no usage block
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _help(f, opt) -> str:
    if opt.default_text is not None:
        return f"{opt.help} (default: {opt.default_text})"
    if f.default is None or f.default is False:
        return opt.help
    return f"{opt.help} (default: {f.default})"


def add_config_options(parser: argparse.ArgumentParser, config_cls) -> None:
    """One flag per declared option of ``config_cls``; flags not given leave the field's default."""
    groups: dict[str, Any] = {}
    for f, opt in options_of(config_cls):
        target = parser
        if opt.group:
            if opt.group not in groups:
                title, _, description = opt.group.partition(": ")
                groups[opt.group] = parser.add_argument_group(title, description or None)
            target = groups[opt.group]
        kwargs: dict[str, Any] = {"help": _help(f, opt), "default": argparse.SUPPRESS}
        if opt.positional:
            target.add_argument(f.name, nargs="?", type=opt.parse, metavar=opt.metavar, **kwargs)
            continue
        if f.type in (bool, "bool"):
            target.add_argument(flag_of(f, opt), dest=f.name, action="store_true", **kwargs)
        else:
            target.add_argument(flag_of(f, opt), dest=f.name, type=opt.parse, metavar=opt.metavar, **kwargs)


def config_from_args(config_cls, args: argparse.Namespace):
    """The config built from the flags that were given (the rest keep their defaults)."""
    names = [f.name for f, _ in options_of(config_cls)]
    return config_cls(**{n: getattr(args, n) for n in names if hasattr(args, n)})


def usage_error(config_cls, exc: InvalidOption) -> UsageError:
    """An InvalidOption raised by the library, in the words of the flag it concerns."""
    flags = {f.name: (f.name if opt.positional else flag_of(f, opt)) for f, opt in options_of(config_cls)}
    where = flags.get(exc.field, exc.field)
    return UsageError(f"argument {where}: {exc.message}" if where else exc.message)


def check_device(device: str) -> None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: cuda is not available here (torch {torch.__version__}); use --device cpu")


def check_out(out: Path) -> None:
    from gradlab.common.files import check_writable

    try:
        check_writable(Path(out))
    except OSError as exc:
        raise UsageError(f"argument --out: cannot write runs under {str(out)!r}: {exc.strerror or exc}") from None
