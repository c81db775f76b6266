"""Benchmark scripts refuse an unusable --json target or model name at once (exit 2)
instead of failing, or silently measuring something else, after the work."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _phases():
    spec = importlib.util.spec_from_file_location("bench_phases", BENCHMARKS / "_phases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_json_target_refuses_a_folder_or_a_path_under_a_file(tmp_path):
    phases = _phases()
    (tmp_path / "file").write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        phases.json_target(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="is not a folder"):
        phases.json_target(str(tmp_path / "file" / "x.json"))
    target = phases.json_target(str(tmp_path / "new" / "deeper" / "r.json"))
    phases.save_json(target, {"rows": [1, 2]})
    assert json.loads(target.read_text()) == {"rows": [1, 2]}


@pytest.mark.parametrize(
    ("script", "argv", "words"),
    [
        ("bench_precision.py", ["--models", "nope"], "invalid choice: 'nope'"),
        ("bench_stream.py", ["--arch", "bogus"], "invalid choice: 'bogus'"),
        ("bench_toy_render.py", ["--json", "{tmp}"], "is a folder"),
    ],
)
def test_benchmarks_refuse_before_measuring(tmp_path, script, argv, words):
    argv = [a.format(tmp=tmp_path) for a in argv]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *argv], capture_output=True, text=True
    )
    assert done.returncode == 2 and words in done.stderr, done.stderr


def test_gpu_check_has_help_and_refuses_unknown_arguments():
    script = str(BENCHMARKS / "gpu_check.sh")
    shown = subprocess.run(["bash", script, "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "--cpu-dry-run" in shown.stdout
    bad = subprocess.run(["bash", script, "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--bogus'" in bad.stderr
