"""The classes of an annotation set are checked by one rule, conventions.check_class_names:
1..254 distinct, non-empty names (a uint8 mask keeps 255 for ignored pixels), with one
message wherever they enter (Annotations, sample_annotation_folder, the release import)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dgan_data import AnnotationError, Annotations
from dgan_data.conventions import MAX_CLASSES, check_class_names

TOO_MANY = [f"c{i}" for i in range(MAX_CLASSES + 1)]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], r"class_names must name 1\.\.254 classes \(a uint8 mask keeps 255 .*\), got 0"),
        (TOO_MANY, r"class_names must name 1\.\.254 classes .*, got 255"),
        (["a", "a"], "class_names: duplicate class names a"),
        (["a", ""], "class_names must be non-empty strings"),
        ("ab", "class_names must be a sequence of names"),
    ],
)
def test_the_rule(names, message):
    with pytest.raises(ValueError, match=message):
        check_class_names(names)


def test_the_bounds_themselves_pass():
    assert check_class_names(("x",)) == ["x"]
    assert len(check_class_names(TOO_MANY[:-1])) == MAX_CLASSES == 254


def _build(names, ids=None):
    masks = np.zeros((2, 4, 4), dtype=np.uint8)
    return Annotations(masks=masks, class_names=names, ids=ids)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (TOO_MANY, r"class_names must name 1\.\.254 classes .*, got 255"),
        ([], r"class_names must name 1\.\.254 classes .*, got 0"),
        (["a", "a"], "duplicate class names a"),
    ],
)
def test_annotations_use_it_and_still_report_every_problem(names, message):
    with pytest.raises(AnnotationError) as err:
        _build(names, ids=["one"])  # a second problem: one id for two samples
    text = str(err.value)
    assert len(err.value.problems) == 2
    assert any(re.search(message, p) for p in err.value.problems), text
    assert "ids has 1 entries for 2 samples" in text


def test_sampling_and_release_import_word_it_the_same(tmp_path, reference_dir):
    from dgan_data import import_datasetgan_release, load_generator
    from dgan_data.annotations import sample_annotation_folder

    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    expected = r"class_names must name 1\.\.254 classes .*, got 255"
    with pytest.raises(ValueError, match=expected):
        sample_annotation_folder(G, 1, tmp_path / "s", seeds=[1], class_names=TOO_MANY)
    release = tmp_path / "release"
    release.mkdir()
    with pytest.raises(ValueError, match=expected):
        import_datasetgan_release(release, class_names=TOO_MANY)
