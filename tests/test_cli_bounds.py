"""Command-line values that ran the machine out of memory, crashed or destroyed a file:
``demo --stream-workers 100000`` (one ~0.5 GB process each), ``suggest --coverage 1e23``
(OverflowError traceback), ``fit --out`` naming the generator being read (replaced by
the interpreter, exit 0), and ``fit --out`` into a read-only folder (refused only after
the whole training)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from test_export_review_fixes import run_cli

from dgan_data.cli.annotate import MAX_COVERAGE
from dgan_data.cli.data import MAX_STREAM_WORKERS

ASSETS = Path(__file__).resolve().parents[1] / "dgan_data" / "toy" / "assets"


def _refused(out, *words: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert all(w in out.stderr for w in words), out.stderr


def test_stream_workers_are_bounded(tmp_path):
    out = run_cli("demo", "--stream-workers", str(MAX_STREAM_WORKERS + 1), "--out", str(tmp_path))
    _refused(out, "--stream-workers", f"0..{MAX_STREAM_WORKERS}")
    assert not any(tmp_path.iterdir())


def test_coverage_is_bounded(tmp_path):
    out = run_cli(
        "suggest", "--generator", "toyface-14", "--interpreter", "toyface-14", "--num", "2",
        "--pool", "4", "--out", str(tmp_path / "s"), "--coverage", "100000000000000000000000",
    )  # fmt: skip
    _refused(out, "--coverage", f"at most {MAX_COVERAGE}")
    assert not (tmp_path / "s").exists()


def test_fit_refuses_to_write_over_its_generator(tmp_path):
    generator = tmp_path / "g.safetensors"
    shutil.copyfile(ASSETS / "generator.safetensors", generator)
    before = hashlib.sha256(generator.read_bytes()).hexdigest()
    out = run_cli(
        "fit", "--generator", str(generator), "--annotations", str(ASSETS / "annotations"),
        "--out", str(tmp_path / "." / "g.safetensors"), "--num-models", "1", "--max-steps", "1",
    )  # fmt: skip
    _refused(out, "is the generator being read")
    assert hashlib.sha256(generator.read_bytes()).hexdigest() == before


def test_fit_refuses_a_read_only_output_folder_when_parsed(tmp_path, monkeypatch):
    """``fit --out`` is parsed by interpreter_output: a folder that cannot be written is
    refused before the training (os.access is patched: root may write anywhere)."""
    import argparse

    from dgan_data.cli import common

    monkeypatch.setattr(common.os, "access", lambda path, mode: False)
    with pytest.raises(argparse.ArgumentTypeError, match="is not writable"):
        common.interpreter_output(str(tmp_path / "i.safetensors"))
