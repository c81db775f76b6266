"""Review fixes around export: the recorded-settings check of ``export --merge/--verify``
reads ``dataset.json`` as every reader does, and explicit class names or a palette
replace a preset's in ``Labeler.from_sources`` (and so in ``export_dataset``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dgan_data.labeler import Labeler, labeler_from

REPO = Path(__file__).resolve().parents[1]
NAMES = [f"c{k}" for k in range(14)]


def run_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    code = f"import sys; from dgan_data.cli import main; sys.exit(main({list(argv)!r}))"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["--verify", "--merge"])
def test_settings_that_are_not_a_dict_are_one_line(tmp_path, mode):
    """``{"settings": "num seed"}`` with a recorded option raised TypeError (string
    indices must be integers), a traceback."""
    (tmp_path / "dataset.json").write_text('{"settings": "num seed"}')
    out = run_cli("export", mode, "--out", str(tmp_path), "--num", "5")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "dataset.json" in out.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_for_dataset_json_does_not_hang_the_option_check(tmp_path):
    """The check read it with read_text(): with --num given the command waited forever."""
    os.mkfifo(tmp_path / "dataset.json")
    out = run_cli("export", "--verify", "--out", str(tmp_path), "--num", "5")
    assert out.returncode == 2 and "dataset.json" in out.stderr, out.stderr


def test_explicit_class_names_and_palette_replace_the_presets():
    """They were passed on beside the preset's: TypeError, multiple values for
    keyword argument 'class_names'."""
    named = Labeler.from_sources("toyface-14", class_names=NAMES, device="cpu")
    assert named.class_names == NAMES
    grey = [[k, k, k] for k in range(14)]
    painted, preset = labeler_from("toyface-14", palette=grey, device="cpu")
    assert preset == "toyface-14" and [list(c) for c in painted.palette] == grey
    assert painted.class_names[:2] == ["background", "skin"]  # the preset's names stay
    with pytest.raises(ValueError, match="1 class names given for 14 classes"):
        Labeler.from_sources("toyface-14", class_names=["a"], device="cpu")
