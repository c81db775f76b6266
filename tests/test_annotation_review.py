"""Annotation fixes of a review: hostile numbers in tool exports, and the
sample -> suggest -> merge loop over several rounds."""

from __future__ import annotations

import pytest
from test_import_masks import coco, labelme, make_folder, poly, write_json, written

from dgan_data.annotations.shapes import decode_rle
from dgan_data.annotations.tools import MaskImportError, import_masks


def _rle(counts) -> dict:
    return {"image_id": 1, "category_id": 2, "segmentation": {"size": [4, 4], "counts": counts}}


@pytest.mark.parametrize(
    "counts",
    [
        [2**62, 2**62, 2**62, 2**62 + 16],  # int64 sum wraps to 16: np.repeat crashed
        [2**64],  # beyond int64: OverflowError
        "o" * 12 + "?",  # a compressed string that decodes to a huge count
        [-1, 17],
        [16.0],
    ],
    ids=["wrapping sum", "beyond int64", "compressed huge", "negative", "float"],
)
def test_rle_counts_out_of_range_are_one_problem_naming_the_annotation(tmp_path, counts):
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(4, 4))
    src = write_json(tmp_path / "c.json", coco([(1, "00000.png", 4, 4)], [_rle(counts)]))
    with pytest.raises(MaskImportError, match=r"c\.json: annotations\[0\] \(id 1\): RLE"):
        import_masks(src, ann, format="coco")
    assert written(ann) == []


def test_decode_rle_checks_counts_as_python_ints():
    with pytest.raises(ValueError, match=r"integers in 0\.\.16"):
        decode_rle([2**62, 2**62, 2**62, 2**62 + 16], 4, 4)
    assert decode_rle([3, 1] * 4, 4, 4).sum() == 4  # the valid case still decodes


def test_a_huge_polygon_coordinate_is_a_problem_not_a_crash(tmp_path):
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(4, 4))
    doc = coco([(1, "00000.png", 4, 4)], [poly(1, 1, 0, 0, 10**400, 0, 4, 4)])
    src = write_json(tmp_path / "c.json", doc)
    with pytest.raises(MaskImportError, match=r"segmentation\[0\]: a polygon is a flat list"):
        import_masks(src, ann, format="coco")
    assert written(ann) == []


def test_a_huge_labelme_point_is_a_problem_not_a_crash(tmp_path):
    ann = make_folder(tmp_path / "ann", n=1)
    shape = ("hair", "polygon", [[0, 0], [2**64, 0], [3, 3]])
    write_json(tmp_path / "lm" / "a.json", labelme("00000.png", [shape]))
    with pytest.raises(MaskImportError, match=r"a\.json"):
        import_masks(tmp_path / "lm", ann, format="labelme")
    assert written(ann) == []


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_a_large_finite_coordinate_is_named_by_its_bound_not_as_non_finite(tmp_path, fmt):
    # 1e300 is finite: the problem is its size, and the message says the bound
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(4, 4))
    if fmt == "coco":
        src = write_json(
            tmp_path / "c.json", coco([(1, "00000.png", 4, 4)], [poly(1, 1, 0, 0, 1e300, 0, 4, 4)])
        )
    else:
        src = tmp_path / "lm"
        write_json(
            src / "a.json",
            labelme("00000.png", [("hair", "polygon", [[0, 0], [1e300, 0], [3, 3]])]),
        )
    with pytest.raises(MaskImportError, match=r"within \+-10,000,000") as caught:
        import_masks(src, ann, format=fmt)
    assert "finite numbers" not in str(caught.value)
    assert written(ann) == []


@pytest.mark.parametrize("value", ["0", 2, 0.5])
def test_iscrowd_must_be_0_or_1(tmp_path, value):
    """``bool("0")`` is True: a string "0" used to turn the region into a crowd."""
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(4, 4))
    doc = coco([(1, "00000.png", 4, 4)], [{**poly(1, 2, 0, 0, 4, 0, 4, 4, 0, 4)}])
    doc["annotations"][0]["iscrowd"] = value
    src = write_json(tmp_path / "c.json", doc)
    with pytest.raises(MaskImportError, match=r"'iscrowd' must be 0 or 1"):
        import_masks(src, ann, format="coco", crowd="ignore")
