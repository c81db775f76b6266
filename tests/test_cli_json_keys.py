"""``inspect --json`` gives the same keys, in the same order, for every file of a kind
(null where there is no value), as it already did for annotation folders: an export
left out kept/dropped/threshold until its selection, a plain interpreter left out
``pixel_context`` (and ``training`` when it had none), a generator named by its path
left out ``preset``. And a file name that is not valid UTF-8, printed on a strict
UTF-8 stdout, made a command that had done its work exit 2 (a UnicodeEncodeError)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from test_cli_errors import run
from test_cli_version_and_pipes import ENV, REPO
from test_export import save_models
from test_inspect_kinds import ANNOTATIONS, INTERPRETER

from dgan_data import export_dataset
from dgan_data.presets import resolve_preset_file

TOY = "toyface-14"


def inspect_json(capsys, path: str) -> dict:
    code, out, err = run(capsys, "inspect", path, "--json")
    assert code == 0, err
    return json.loads(out)


def test_an_unfinished_export_has_the_keys_of_a_finished_one(capsys, tmp_path):
    done, half = tmp_path / "done", tmp_path / "half"
    export_dataset(TOY, 2, done, batch_size=1, progress=False)
    export_dataset(TOY, 2, half, batch_size=1, shard=0, num_shards=2, progress=False)
    finished, unfinished = inspect_json(capsys, str(done)), inspect_json(capsys, str(half))
    assert list(unfinished) == list(finished)
    assert finished["kept"] == 2 and finished["problem"] is None
    assert [unfinished[k] for k in ("kept", "dropped", "threshold")] == [None, None, None]
    code, table, _ = run(capsys, "inspect", str(half))  # the table leaves the nulls out
    assert code == 0 and "None" not in table and "status" in table


def test_a_plain_interpreter_has_the_keys_of_one_with_pixel_context(
    capsys, tmp_path, reference_dir
):
    plain = save_models(tmp_path, reference_dir)["interpreter"]  # no context, no training
    with_context, without = inspect_json(capsys, str(INTERPRETER)), inspect_json(capsys, plain)
    assert with_context["pixel_context"] == {"with_image": True, "context": 1}
    assert list(without) == list(with_context)
    assert without["pixel_context"] == {"with_image": False, "context": 0}
    assert without["training"] is None
    code, table, _ = run(capsys, "inspect", plain)
    assert code == 0 and "pixel_context" in table and "training" not in table


def test_a_generator_named_by_path_has_the_keys_of_one_named_by_preset(capsys):
    path = resolve_preset_file(TOY, "generator")
    by_preset, by_path = inspect_json(capsys, TOY), inspect_json(capsys, str(path))
    assert list(by_path) == list(by_preset)
    assert (by_preset["preset"], by_path["preset"]) == (TOY, None)
    assert by_path["file"] == by_preset["file"] == str(path)
    code, table, _ = run(capsys, "inspect", str(path))
    assert code == 0 and "preset" not in table


def test_a_name_that_is_not_utf8_is_printed_escaped_on_a_strict_stdout(tmp_path):
    if sys.getfilesystemencoding().lower() not in ("utf-8", "utf8"):
        pytest.skip("file names are not UTF-8 here")
    target = tmp_path / os.fsdecode(b"ann\xff")
    try:
        shutil.copytree(ANNOTATIONS, target)
    except OSError:  # a file system that takes only valid UTF-8 names
        pytest.skip("this file system refuses a name that is not UTF-8")
    done = subprocess.run(
        [sys.executable, "-m", "dgan_data.cli", "inspect", str(target)],
        cwd=REPO, env={**ENV, "PYTHONIOENCODING": "utf-8:strict"},
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"ann\\udcff" in done.stdout and not done.stderr
