"""``--no-progress`` on every command that draws bars: ``demo`` had it, ``fit`` and
``export`` drew theirs on a terminal whatever the user wanted."""

from __future__ import annotations

import io
import sys

import pytest

from dgan_data.cli import main
from dgan_data.presets import resolve_preset_file


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fit_argv(tmp_path) -> list[str]:
    ann = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
    out = tmp_path / "i.safetensors"
    return ["fit", "--generator", "toyface-14", "--annotations", str(ann), "--out", str(out),
            "--num-models", "1", "--max-steps", "2", "--skip-validation"]  # fmt: skip


def export_argv(tmp_path) -> list[str]:
    return ["export", "toyface-14", "--num", "2", "--batch-size", "2", "--out",
            str(tmp_path / "exp"), "--device", "cpu"]  # fmt: skip


@pytest.mark.parametrize(
    "argv, bar", [(fit_argv, "interpreter"), (export_argv, "export")], ids=["fit", "export"]
)
def test_no_progress_on_a_terminal(tmp_path, monkeypatch, argv, bar):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*argv(tmp_path), "--no-progress"]) == 0
    assert bar not in terminal.getvalue() and "\r" not in terminal.getvalue()


@pytest.mark.parametrize(
    "argv, bar", [(fit_argv, "interpreter"), (export_argv, "export")], ids=["fit", "export"]
)
def test_the_bar_is_there_without_it(tmp_path, monkeypatch, argv, bar):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv(tmp_path)) == 0
    assert bar in terminal.getvalue()
