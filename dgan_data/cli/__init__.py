"""The ``dgan-data`` command line: the only code that prints.

One entry point, one subcommand per job (``models.py``: inspect, presets, sample, fit;
``data.py``: preview, export, demo). Bad input exits with code 2 and a one-line
message naming the file or the value; ``--verbose`` shows logs and tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from ..export import ExportBusyError
from ..generators import CheckpointError
from ..labeler import NonFiniteOutputError
from ..presets import UnknownPresetError
from . import annotate, data, models
from .common import Handler, UsageError, merge_preset_flag

__all__ = ["USER_ERRORS", "OneLineParser", "UsageError", "build_parser", "main", "one_line"]

log = logging.getLogger("dgan_data.cli")

#: Errors that mean "bad input": one line on stderr and exit code 2, no traceback.
USER_ERRORS = (
    UsageError,
    ValueError,
    CheckpointError,
    UnknownPresetError,
    OSError,
    ExportBusyError,
    NonFiniteOutputError,
    FloatingPointError,
)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what was wrong and where to look),
    not argparse's usage block; the exit code stays 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dgan-data",
        description="DatasetGAN data factory: generators, interpreters, live labeled streams.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_: str, epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # also after the subcommand; SUPPRESS keeps a -v given before it
        p.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show logs and tracebacks",
        )
        p.set_defaults(handler=handler)
        return p

    models.register(add)
    data.register(add)
    annotate.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `torchrun ... -m dgan_data.cli -- export ...` on any Python
        argv = argv[1:]
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        merge_preset_flag(args)
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.verbose:
            raise
        message = error_lines(err)
        print(f"dgan-data {args.command}: error: {message[0]}", file=sys.stderr)
        for extra in message[1:]:
            print(f"  {extra}", file=sys.stderr)
        return 2


def error_lines(err: BaseException) -> list[str]:
    """The lines of a user error's message (a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text.strip().splitlines() or [type(err).__name__]


def one_line(err: BaseException) -> str:
    """A user error's message as one line, for scripts that share the CLI's rules."""
    return "; ".join(line.strip() for line in error_lines(err))
