"""Small gaps left open by earlier reviews: messages that named too little, and
guards that let a nonsense value through."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import pytest
import torch
from example_scripts import load_example
from test_cli_errors import run
from test_export import models, reference  # noqa: F401
from test_export_hardening import done  # noqa: F401

from dgan_data.cli.common import UsageError
from dgan_data.export import ExportedDataset
from dgan_data.presets import Preset, get_preset


@pytest.fixture(scope="module")
def deeplab():
    return load_example("train_deeplab")


@pytest.mark.parametrize(
    ("saved", "named"),
    [
        ({"val": {}}, r"no 'per_image' entry"),
        ({"per_image": {}}, r"no 'val' entry"),
        ([1, 2, 3], r"no 'per_image' or 'val' entry"),
    ],
    ids=["no-per-image", "no-val", "a-list"],
)
def test_a_scores_file_without_its_entries_names_the_missing_one(tmp_path, deeplab, saved, named):
    """The message read "(per_image)" or a list's TypeError: it now names what is missing."""
    torch.save(saved, tmp_path / "scores.pt")
    with pytest.raises(UsageError, match=r"scores\.pt: not a scores file of this script") as exc:
        deeplab.EvalScores(tmp_path, True, "x", 4).load(2)
    assert re.search(named, str(exc.value))


def test_reading_an_export_without_its_own_sha256_warns(done, caplog):  # noqa: F811
    """Verify noted it, but ExportedDataset read such a folder in silence: edits of its
    class names or palette cannot be detected, so the reader says so once."""
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        ExportedDataset(done)
    assert not [r for r in caplog.records if "sha256" in r.getMessage()]
    path = done / "dataset.json"
    desc = json.loads(path.read_text())
    del desc["selection"]["description_sha256"]
    path.write_text(json.dumps(desc))
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        data = ExportedDataset(done)
    warned = [r.getMessage() for r in caplog.records if "sha256" in r.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0], warned
    assert len(data) > 0  # still read: older exports have no such field


@pytest.mark.parametrize("folder", ["", "   "])
def test_an_empty_builtin_dir_is_refused(folder):
    """``builtin_dir=""`` was taken as the dgan_data package folder itself."""
    fields = {**get_preset("toyface-14").to_dict(), "name": "mine", "builtin_dir": folder}
    with pytest.raises(ValueError, match="builtin_dir must be None or a folder path"):
        Preset(**fields)
    fields["builtin_dir"] = None
    assert Preset(**fields).search_dirs()[0].name == "mine"  # the cache only


@pytest.mark.parametrize(
    ("argv", "unknown"),
    [
        (["export", "toyface-14", "--num", "4", "--outt", "x"], "--outt"),
        (["export", "toyface-14", "--num", "4", "--outdir=x"], "--outdir"),
    ],
)
def test_a_mistyped_required_option_gets_its_hint(capsys, argv, unknown):
    """argparse reports the missing ``--out`` before the unknown ``--outt``, so the
    did-you-mean of unknown options never came: now the missing option's error names
    the unknown word and the close option."""
    code, _, err = run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "required: --out" in err
    assert f"unrecognized arguments: {unknown}. Did you mean '--out'?" in err


def test_a_missing_required_option_alone_has_no_hint(capsys):
    code, _, err = run(capsys, "export", "toyface-14", "--num", "4", "--", "--outt")
    assert code == 2 and "required: --out" in err and "unrecognized" not in err, err


@pytest.mark.parametrize("argv", [["--cpu-dry-run", "--bogus"], ["", "--cpu-dry-run"]])
def test_gpu_check_refuses_a_second_argument(tmp_path, argv):
    """Only the first argument was read: a second was ignored and the whole check ran
    (on CUDA, when the first was empty). Nothing may start: no output folder appears."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    result = subprocess.run(
        ["bash", str(script), *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2 and "2 arguments given" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
