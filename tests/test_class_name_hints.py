"""A class name spelt unlike the folder's gets the close class: a tool's label ``Hair``
for the class ``hair`` (the message said only "without a class: 'Hair'"), a ``--map``
target with a typo, and a misspelt class in ``class_balance``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgan_data import DatasetGANStream
from dgan_data.annotations import Annotations
from dgan_data.annotations.tools import MaskImportError, import_masks

CLASSES = ["background", "hair", "skin"]


@pytest.fixture
def ann(tmp_path: Path) -> Path:
    root = tmp_path / "ann"
    images = np.random.default_rng(0).integers(0, 256, (1, 3, 6, 6), dtype=np.uint8)
    Annotations.from_arrays(
        masks=np.zeros((1, 6, 6), np.uint8), class_names=CLASSES, seeds=[0], images=images
    ).save(root)
    for p in (root / "masks").iterdir():
        p.unlink()
    return root


def coco_file(tmp_path: Path, categories: list[str]) -> Path:
    """One 6x6 image: category k fills row k (a 1-pixel-high box)."""
    doc = {
        "images": [{"id": 1, "file_name": "00000.png", "height": 6, "width": 6}],
        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(categories)],
        "annotations": [
            {"id": k + 1, "image_id": 1, "category_id": k + 1, "iscrowd": 0,
             "segmentation": [[0, k, 6, k, 6, k + 1, 0, k + 1]]}
            for k in range(len(categories))
        ],
    }  # fmt: skip
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    return path


def test_tool_labels_get_the_maps_that_would_do(tmp_path, ann):
    src = coco_file(tmp_path, ["Hair", "sk in", "beard"])
    with pytest.raises(MaskImportError) as err:
        import_masks(src, ann, format="coco")
    message = str(err.value)
    assert "3 labels" in message and "without a class" in message
    assert message.endswith("Did you mean --map Hair=hair --map 'sk in=skin'?")  # not beard
    # the suggested maps, pasted, are the fix (beard mapped by hand)
    maps = dict(m.split("=") for m in shlex.split(message.split("Did you mean ")[1][:-1])[1::2])
    import_masks(src, ann, format="coco", mapping={**maps, "beard": "ignore"})
    with Image.open(ann / "masks" / "00000.png") as im:
        assert np.asarray(im)[:3, 0].tolist() == [1, 2, 255]


def test_a_map_target_with_a_typo(tmp_path, ann):
    src = coco_file(tmp_path, ["Hair"])
    with pytest.raises(MaskImportError) as err:
        import_masks(src, ann, format="coco", mapping={"Hair": "hiar"})
    assert "'hiar' is not a class of manifest.json" in str(err.value)
    assert str(err.value).endswith("Did you mean 'hair'?")


def test_nothing_close_gets_no_guess(tmp_path, ann):
    src = coco_file(tmp_path, ["beard"])
    with pytest.raises(MaskImportError) as err:
        import_masks(src, ann, format="coco")
    assert "Did you mean" not in str(err.value)


def test_class_balance_with_a_typo():
    with pytest.raises(ValueError) as err:
        DatasetGANStream("toyface-14", class_balance={"teth": 0.2, "pupil": 0.3})
    assert "class_balance names unknown classes ['teth']" in str(err.value)
    assert str(err.value).endswith("Did you mean 'teeth'?")
