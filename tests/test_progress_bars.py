"""Progress bars are drawn where they can move (a terminal, a notebook) and left out of
log files and pipes, where every redraw of a bar stays as a partial line."""

from __future__ import annotations

import ast
import io
import sys

import pytest
import torch
from import_graph import PACKAGE_DIR
from torch import nn

from dgan_data import Interpreter
from dgan_data.downstream.train import evaluate, train_segmentation
from dgan_data.progress import bar_shown


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class NotebookStream(io.StringIO):
    """Stands for ipykernel's OutStream: not a tty, but it shows a bar in place."""


NotebookStream.__module__ = "ipykernel.iostream"


class ClosedTerminal(Terminal):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


def pairs(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)) for _ in range(n)]


def fit_features() -> None:
    feats = [[torch.randn(2, 4, 4)] for _ in range(3)]
    masks = torch.zeros(3, 4, 4, dtype=torch.long)
    masks[:, :2] = 1
    Interpreter.fit_features(feats, masks, 2, num_models=1, hidden=(4, 4), max_steps=3)


def train() -> None:
    train_segmentation(nn.Conv2d(3, 2, 1), pairs(3), 3, device="cpu")


def score() -> None:
    evaluate(nn.Conv2d(3, 2, 1), pairs(1)[0], 2, progress=True)


RUNS = {"fit_features": (fit_features, "interpreter"), "train": (train, "train")}
RUNS["evaluate"] = (score, "evaluate")


@pytest.mark.parametrize("name", sorted(RUNS))
def test_no_bar_in_a_log_file_or_pipe(monkeypatch, name):
    run, _ = RUNS[name]
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    run()
    assert "\r" not in log.getvalue() and "it/s" not in log.getvalue()
    assert "step/s" not in log.getvalue()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_terminal_still_gets_the_bar(monkeypatch, name):
    run, desc = RUNS[name]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run()
    assert desc in terminal.getvalue() and "\r" in terminal.getvalue()


def test_where_a_bar_is_drawn():
    assert bar_shown(True, Terminal())
    assert bar_shown(True, NotebookStream())
    assert not bar_shown(True, io.StringIO())  # a file or a pipe
    assert not bar_shown(True, ClosedTerminal())
    assert not bar_shown(False, Terminal())  # the caller said no


def test_no_stderr_at_all(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)
    assert not bar_shown(True)


def test_every_bar_goes_through_the_rule():
    """A module that made its own tqdm bar would draw it into log files again."""
    users = []
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.name == "progress.py" and path.parent == PACKAGE_DIR:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names]
                if any(n.split(".")[0] == "tqdm" for n in names):
                    users.append(str(path.relative_to(PACKAGE_DIR)))
    assert users == []
