"""Progress bars: one rule for every bar the library draws.

A text bar redraws itself with carriage returns. A terminal or a notebook shows that as
one line that moves; a log file, a pipe or a CI log keeps every redraw, and a long fit
leaves thousands of partial lines in it. So a bar the caller asked for is drawn only
where it can move: a terminal on stderr, or a notebook. Elsewhere the work runs without
one (the library's ``logging`` still says what it does).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import std
from tqdm.auto import tqdm
from tqdm.autonotebook import tqdm as _chosen_bar

__all__ = ["bar_shown", "progress_bar"]


def bar_shown(progress: bool, stream: TextIO | None = None) -> bool:
    """Whether a bar the caller asked for (``progress``) is drawn on ``stream`` (stderr
    when None): yes on a terminal and in a notebook, no in a file or a pipe."""
    if not progress:
        return False
    if _chosen_bar is not std.tqdm:  # tqdm.auto chose the notebook's widget bar
        return True
    stream = sys.stderr if stream is None else stream
    if stream is None:  # no console at all (pythonw)
        return False
    if type(stream).__module__.split(".")[0] == "ipykernel":  # a notebook's text output
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or the stream is closed
        return False


def progress_bar(iterable: Iterable[Any] | None = None, *, progress: bool, **options: Any) -> Any:
    """A tqdm bar over ``iterable`` (or one updated by hand), drawn where
    :func:`bar_shown` says; ``options`` go to tqdm (total, desc, unit, ...)."""
    return tqdm(iterable, disable=not bar_shown(progress), **options)
