"""A path whose folder is a file (``model.pt/config.json``, ``runs/a`` where ``runs`` is a
file) cannot exist, and "no such file" alone sent the user looking for a missing file;
the messages now name the file that stands where a folder should be, as ``ls`` does
("Not a directory")."""

from __future__ import annotations

import os

import pytest

from dgan_data import AnnotationError, Annotations, ExportedDataset, Interpreter, fileio
from dgan_data.cli import main
from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError
from dgan_data.fileio import require_file, why_not_a_file, why_not_a_folder
from dgan_data.presets import resolve_source


@pytest.fixture
def blocked(tmp_path, monkeypatch):
    (tmp_path / "runs").write_text("a file where a folder is meant")
    monkeypatch.chdir(tmp_path)
    return tmp_path


BLOCKED = "runs is a file, not a folder"


def test_the_phrases_name_the_file_in_the_way(blocked):
    assert why_not_a_file("runs/g.safetensors") == f"does not exist ({BLOCKED})"
    assert why_not_a_folder("runs/a/b/c") == f"does not exist ({BLOCKED})"  # any depth
    assert fileio.file_in_the_way("runs/a/b") == blocked.relative_to(blocked) / "runs"
    assert fileio.file_in_the_way(blocked / "runs" / "a") == blocked / "runs"


def test_a_path_that_is_simply_missing_keeps_its_phrase(blocked):
    os.mkdir("data")
    assert why_not_a_file("data/g.safetensors") == "does not exist"
    assert why_not_a_file("nowhere/g.safetensors") == "does not exist"
    assert fileio.file_in_the_way("data/g.safetensors") is None
    assert fileio.file_in_the_way("nowhere/deeper/g.safetensors") is None


def test_a_pipe_in_the_way_is_named_as_one(blocked):
    os.mkfifo("queue")
    assert why_not_a_file("queue/x") == "does not exist (queue is not a folder (a pipe))"


def test_require_file(blocked):
    with pytest.raises(FileNotFoundError) as err:
        require_file("runs/g.safetensors")
    assert str(err.value) == f"runs/g.safetensors: no such file. {BLOCKED}."


def test_a_checkpoint_under_a_file(blocked):
    with pytest.raises(FileNotFoundError) as err:
        resolve_source("runs/generator.safetensors", "generator")
    assert str(err.value) == f"runs/generator.safetensors: no such file. {BLOCKED}."
    with pytest.raises(FileNotFoundError, match=f"no such file. {BLOCKED}."):
        Interpreter.load("runs/interpreter.safetensors")


def test_the_command_line_says_it(blocked, capsys):
    assert main(["inspect", "runs/g.safetensors"]) == 2
    assert f"runs/g.safetensors: no such file. {BLOCKED}." in capsys.readouterr().err


def test_folders_under_a_file(blocked):
    with pytest.raises(AnnotationError) as err:
        Annotations.load("runs/ann")
    assert f"runs/ann: no such annotation folder. {BLOCKED}." in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        ExportedDataset("runs/export")
    assert str(err.value).endswith(f"(not a dgan_data export). {BLOCKED}.")
    with pytest.raises(LabeledFolderError) as err:
        LabeledFolder("runs/real", num_classes=3)
    assert str(err.value).count(BLOCKED) == 1  # said once
