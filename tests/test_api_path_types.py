"""Paths given to the Python API: None, bytes or a number is a TypeError naming the
argument (Python's "expected str, bytes or os.PathLike object" named none), a NUL
character a ValueError before any work, and ``Annotations.load("")`` is not the current
folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dgan_data import Annotations
from dgan_data.fileio import nonempty_path


def _ann() -> Annotations:
    masks = np.zeros((1, 8, 8), dtype=np.uint8)
    return Annotations.from_arrays(masks=masks, class_names=["bg", "fg"], seeds=[0])


@pytest.mark.parametrize("bad", [None, 3, b"folder"])
def test_save_and_load_name_a_path_that_is_not_one(bad):
    with pytest.raises(TypeError, match=r"folder must be a path \(str or os\.PathLike\), got"):
        _ann().save(bad)
    with pytest.raises(TypeError, match=r"folder must be a path \(str or os\.PathLike\), got"):
        Annotations.load(bad)


def test_a_nul_character_is_named_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="folder holds a NUL character"):
        _ann().save(str(tmp_path / "a\0b"))
    assert list(tmp_path.iterdir()) == []


def test_loading_an_empty_path_is_not_the_current_folder(tmp_path, monkeypatch):
    _ann().save(tmp_path)
    monkeypatch.chdir(tmp_path)  # an annotation folder here: "" used to load it
    with pytest.raises(ValueError, match="folder is an empty path"):
        Annotations.load("")
    assert len(Annotations.load(".")) == 1


def test_path_like_values_pass():
    assert nonempty_path(Path("a") / "b", "out") == Path("a/b")
    assert nonempty_path("x.json", "out") == Path("x.json")


@pytest.mark.parametrize("bad", [None, 3, b"x"])
def test_interpreter_files_and_labeled_folders_name_a_path_that_is_not_one(bad):
    from dgan_data.downstream.realdata import LabeledFolder, write_labeled_folder
    from dgan_data.interpreter import Interpreter

    with pytest.raises(TypeError, match=r"interpreter file must be a path \(str or os\.PathLike"):
        Interpreter.load(bad)
    with pytest.raises(TypeError, match=r"root must be a path \(str or os\.PathLike"):
        LabeledFolder(bad)
    images, masks = np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(TypeError, match=r"root must be a path \(str or os\.PathLike"):
        write_labeled_folder(bad, images, masks)


def test_a_labeled_folder_at_an_empty_path_is_not_the_current_folder(tmp_path, monkeypatch):
    from dgan_data.downstream.realdata import LabeledFolder, write_labeled_folder

    write_labeled_folder(tmp_path, np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 4), np.uint8))
    monkeypatch.chdir(tmp_path)  # "" read this folder before
    with pytest.raises(ValueError, match="root is an empty path"):
        LabeledFolder("")
    assert len(LabeledFolder(".")) == 1
