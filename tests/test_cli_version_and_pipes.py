"""``dgan-data --version``, ``python -m dgan_data``, and output piped into a reader that
stops early (``dgan-data presets | head -1``), which printed "error: [Errno 32] Broken
pipe" and exited 2."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dgan_data
from dgan_data import cli
from dgan_data.cli import main

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


def test_version_names_the_package_torch_and_python(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"dgan-data {dgan_data.__version__} (torch {torch.__version__}")
    assert line.endswith(f"Python {platform.python_version()})")


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "dgan_data", "--version"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"dgan-data {dgan_data.__version__} ")
    bad = subprocess.run(
        [sys.executable, "-m", "dgan_data", "presets", "no-such-preset"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "no-such-preset" in bad.stderr


def test_a_reader_that_went_away_ends_the_command_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is printed
    try:
        out = subprocess.run(
            [sys.executable, "-m", "dgan_data", "presets"],
            cwd=REPO, env=ENV, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert out.returncode == 141, out.stderr  # as a tool that SIGPIPE ends
    assert out.stderr == ""  # no "error: [Errno 32] Broken pipe", no "Exception ignored"


def test_a_broken_pipe_writing_a_file_is_still_an_error(monkeypatch, capsys):
    """A FIFO named as ``--out`` whose reader left: the write names the file (fileio),
    and that is the user's error, not the command's output going away."""

    def write_to_a_pipe_without_reader(args):
        raise BrokenPipeError(32, "Broken pipe", "/tmp/grid.png")

    monkeypatch.setattr(cli, "merge_preset_flag", write_to_a_pipe_without_reader)
    assert main(["presets"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Broken pipe" in err[0] and "/tmp/grid.png" in err[0], err
