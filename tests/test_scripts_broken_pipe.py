"""Examples and benchmarks piped into a reader that stops early (``| head``) end quietly
with exit code 141, as the command line does; they printed a BrokenPipeError traceback."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgan_data.cli import run_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))


def test_a_closed_pipe_ends_a_script_quietly():
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(ROOT)}
    script = ROOT / "examples" / "stream_quickstart.py"
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc.stdout.close()  # the reader is gone before the script writes a line
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


def test_run_script_passes_the_code_on():
    with pytest.raises(SystemExit) as done:
        run_script(lambda: 3)
    assert done.value.code == 3
    with pytest.raises(SystemExit) as done:
        run_script(lambda: {"result": 1})  # a script whose main returns its result
    assert done.value.code == 0


def test_a_broken_pipe_to_a_named_file_is_still_an_error():
    def write_to_a_fifo():
        raise BrokenPipeError(32, "Broken pipe", "out.fifo")

    with pytest.raises(BrokenPipeError):
        run_script(write_to_a_fifo)


def test_every_script_runs_through_run_script():
    mains = []
    for path in SCRIPTS:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                mains.append((path.relative_to(ROOT).as_posix(), ast.unparse(node.body[0])))
    assert len(mains) >= 20
    assert [p for p, body in mains if body != "run_script(main)"] == []


def test_script_errors_stay_one_line(capsys):
    from dgan_data.cli import script_error

    assert script_error("bench.py", ValueError("--steps must be >= 1")) == 2
    assert capsys.readouterr().err == "bench.py: error: --steps must be >= 1\n"
    assert script_error("bench.py", BrokenPipeError(32, "Broken pipe", "out.fifo")) == 2
    assert "out.fifo" in capsys.readouterr().err  # a file it wrote: still named
    with pytest.raises(BrokenPipeError):  # its own output: left to run_script
        script_error("bench.py", BrokenPipeError(32, "Broken pipe"))
