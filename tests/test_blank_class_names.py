"""Blank class names and labeled folders' class lists follow the one rule of
conventions.check_class_names: 1..254 distinct names that are not blank.

A name of spaces or a tab was refused in a labeled folder's ``classes.json`` and by
``write_labeled_folder`` but accepted by ``Annotations`` and ``LabeledFolder(class_names=)``,
where it showed as nothing in a legend and in per-class tables. ``LabeledFolder``'s
``class_names`` had no bound of its own (255 names were reported as a bad ``num_classes``
the caller never gave), and the three class-list checks of ``realdata`` worded the same
problems three ways.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgan_data import AnnotationError, Annotations
from dgan_data.conventions import check_class_names, check_names
from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError, write_labeled_folder

BLANKS = [" ", "\t", "  \n"]


@pytest.mark.parametrize("blank", BLANKS)
def test_the_rule_refuses_blank_names_and_shows_them(blank):
    for check in (check_names, check_class_names):
        with pytest.raises(ValueError) as err:
            check(["skin", blank])
        assert str(err.value) == f"class_names must be non-empty strings, got {blank!r}"
    assert check_class_names(["upper lip", " hair"]) == ["upper lip", " hair"]  # not blank


def test_annotations_refuse_a_blank_class_name():
    masks = np.zeros((1, 4, 4), dtype=np.uint8)
    with pytest.raises(AnnotationError, match=r"class_names must be non-empty strings, got ' '"):
        Annotations.from_arrays(masks=masks, class_names=["bg", " "], seeds=[1])


@pytest.fixture
def labeled(tmp_path):
    images = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    masks = np.zeros((1, 4, 4), dtype=np.uint8)
    return write_labeled_folder(tmp_path / "real", images, masks, names=["x"])


def test_a_labeled_folder_refuses_blank_or_too_many_class_names(labeled):
    with pytest.raises(ValueError, match=r"^class_names must be non-empty strings, got '\\t'$"):
        LabeledFolder(labeled, class_names=["bg", "\t"])
    with pytest.raises(ValueError, match=r"^class_names must name 1\.\.254 classes .*, got 255$"):
        LabeledFolder(labeled, class_names=[f"c{i}" for i in range(255)])
    with pytest.raises(ValueError, match=r"^class_names must name 1\.\.254 classes .*, got 0$"):
        LabeledFolder(labeled, class_names=[])
    assert LabeledFolder(labeled, class_names=["bg", "fg"]).class_names == ["bg", "fg"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["bg", "bg"], "classes.json: class names: duplicate class names bg"),
        (["bg", " "], "classes.json: class names must be non-empty strings, got ' '"),
        (
            [f"c{i}" for i in range(255)],
            "classes.json: class names must name 1..254 classes (a uint8 mask keeps 255 "
            "for ignored pixels), got 255",
        ),
    ],
)
def test_classes_json_is_checked_by_the_same_rule(labeled, names, message):
    (labeled / "classes.json").write_text(json.dumps(names))
    with pytest.raises(LabeledFolderError) as err:
        LabeledFolder(labeled)
    assert err.value.problems == [message]


def test_writing_a_labeled_folder_words_it_the_same(tmp_path):
    images = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    masks = np.zeros((1, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"^class_names must name 1\.\.254 classes .*, got 0$"):
        write_labeled_folder(tmp_path / "a", images, masks, names=["x"], class_names=[])
    with pytest.raises(ValueError, match=r"^class_names: duplicate class names bg$"):
        write_labeled_folder(tmp_path / "b", images, masks, names=["x"], class_names=["bg", "bg"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
