"""The ``dgan-data`` command line: the only code that prints.

One entry point, one subcommand per job (``models.py``: inspect, presets, sample, fit;
``data.py``: preview, export, demo). Bad input exits with code 2 and a one-line
message naming the file or the value; ``--verbose`` shows logs and tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

from .._version import __version__
from ..conventions import did_you_mean, with_hint
from ..export import ExportBusyError
from ..fileio import FolderBusyError
from ..generators import CheckpointError
from ..labeler import NonFiniteOutputError
from ..presets import UnknownPresetError
from . import annotate, data, models
from .common import Handler, UsageError, fill_from_preset, merge_preset_flag

__all__ = [
    "USER_ERRORS",
    "OneLineParser",
    "UsageError",
    "build_parser",
    "main",
    "one_line",
    "run_script",
    "script_error",
]

log = logging.getLogger("dgan_data.cli")

#: Errors that mean "bad input": one line on stderr and exit code 2, no traceback.
USER_ERRORS = (
    UsageError,
    ValueError,
    CheckpointError,
    UnknownPresetError,
    OSError,
    ExportBusyError,
    FolderBusyError,
    NonFiniteOutputError,
    FloatingPointError,
)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what was wrong and where to look),
    not argparse's usage block; the exit code stays 2."""

    _words: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        choice = _INVALID_CHOICE.search(message)  # a mistyped command or choice
        if choice is not None:
            options = re.findall(r"'([^']*)'", choice.group(2)) or choice.group(2).split(", ")
            message = with_hint(message, did_you_mean(choice.group(1), options))
        elif message.startswith(_REQUIRED):
            message = self._with_unknown_options(message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's; the words are kept so that a missing required option can be
        matched with a mistyped one (argparse reports the missing one first)."""
        self._words = tuple(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def _with_unknown_options(self, message: str) -> str:
        """``message`` and the words given that are none of this parser's options, each
        with the close options (``--outt`` when ``--out`` is required)."""
        options = [o for a in self._actions for o in a.option_strings]
        words = list(self._words[: self._words.index("--")] if "--" in self._words else self._words)
        unknown = [
            w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in options
        ]
        if not unknown:
            return message
        hints = "".join(did_you_mean(word, options, cutoff=0.7) for word in unknown)
        return with_hint(f"{message}; unrecognized arguments: {' '.join(unknown)}", hints)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's, but an unknown option gets the close options of its command,
        and the error names that command (``dgan-data demo: error: ...``)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(getattr(parsed, "command", None)) or self
            options = [o for a in command._actions for o in a.option_strings]
            hints = "".join(
                did_you_mean(word.split("=")[0], options, cutoff=0.7)
                for word in extras
                if word.startswith("--")
            )
            command.error(with_hint(f"unrecognized arguments: {' '.join(extras)}", hints))
        return parsed

    def _command_parser(self, name: str | None) -> argparse.ArgumentParser | None:
        if self._subparsers is None or name is None:
            return None
        return self._subparsers._group_actions[0].choices.get(name)


#: argparse's message for a value outside ``choices`` (quoted in Python <= 3.11)
_REQUIRED = "the following arguments are required:"
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dgan-data",
        description="DatasetGAN data factory: generators, interpreters, live labeled streams.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show logs and tracebacks")
    parser.add_argument(
        "--version",
        action="version",
        version=version_line(),
        help="show the version (and torch's, Python's) and exit",
    )
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
    _escape_unencodable_output()
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
        fill_from_preset(args)
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader gone (`| head`) shows here, not at the exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as err:
        return 141 if _reader_left(err) else _user_error(args, err)
    except USER_ERRORS as err:
        return _user_error(args, err)


def _escape_unencodable_output() -> None:
    """Print what stdout and stderr cannot encode escaped (a file name that is not valid
    UTF-8, ``g\\xff.png``, is read as ``g\\udcff.png`` and printed so), where the streams
    are strict: the UnicodeEncodeError of a line printed after the work was done was a
    ValueError, so the command reported a failure (exit 2) for files it had written.
    Streams that write such names back as bytes (surrogateescape), or are not text
    files (a test's StringIO), are left as they are."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None or getattr(stream, "errors", None) != "strict":
            continue
        with contextlib.suppress(OSError, ValueError):  # one that cannot keeps its own
            reconfigure(errors="backslashreplace")


def _user_error(args: argparse.Namespace, err: BaseException) -> int:
    """One line (and its continuation lines) on stderr, exit code 2."""
    if args.verbose:
        raise err
    message = error_lines(err)
    print(f"dgan-data {args.command}: error: {message[0]}", file=sys.stderr)
    for extra in message[1:]:
        print(f"  {extra}", file=sys.stderr)
    return 2


def run_script(script_main: Callable[[], Any]) -> NoReturn:
    """Run an example's or a benchmark's ``main`` and exit with its code (0 when it
    returns no int). Output piped into a reader that stops early (``| head``) ends the
    script quietly with exit code 141, as for the command line, instead of a
    BrokenPipeError traceback."""
    try:
        code = script_main()
        sys.stdout.flush()  # a reader gone shows here, not at the exit
    except BrokenPipeError as err:
        if not _reader_left(err):
            raise
        code = 141
    raise SystemExit(code if isinstance(code, int) else 0)


def script_error(script: str, err: BaseException) -> int:
    """What an example or a benchmark does with a user error: one line on stderr naming
    ``script``, exit code 2. A broken pipe on its own output is raised again, for
    :func:`run_script` to end the script quietly."""
    if isinstance(err, BrokenPipeError) and _own_output(err):
        raise err
    print(f"{script}: error: {one_line(err)}", file=sys.stderr)
    return 2


def _own_output(err: BrokenPipeError) -> bool:
    """Whether the broken pipe is the command's own output (no file named), not a file
    such as a FIFO it was told to write."""
    return err.filename is None


def _reader_left(err: BrokenPipeError) -> bool:
    """For a broken pipe on the command's own output, point stdout at the null device
    and say so: the command then ends quietly with 141, what a tool killed by SIGPIPE
    returns. False for a file it wrote, which is an error naming that file."""
    if not _own_output(err):
        return False
    _discard_stdout()
    return True


def _discard_stdout() -> None:
    """Point stdout at the null device: its reader is gone, and the flush at exit would
    otherwise print "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # a stdout without a file descriptor (captured)
        pass


def version_line() -> str:
    """What ``--version`` prints: this package's version, and torch's and Python's (the
    ones a bug report needs)."""
    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    return (
        f"dgan-data {__version__} (torch {torch.__version__}{cuda}, "
        f"Python {platform.python_version()})"
    )


def error_lines(err: BaseException) -> list[str]:
    """The lines of a user error's message (a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text.strip().splitlines() or [type(err).__name__]


def one_line(err: BaseException) -> str:
    """A user error's message as one line, for scripts that share the CLI's rules."""
    return "; ".join(line.strip() for line in error_lines(err))
