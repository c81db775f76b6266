"""import_datasetgan_release checks its arguments before it reads the folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgan_data import import_datasetgan_release

CLASSES = ["background", "hair", "eye"]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    folder = tmp_path / "release"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        mask = np.zeros((8, 8), np.int64)
        mask[:4] = 1
        np.save(folder / f"image_mask{i}.npy", mask)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            folder / f"image_{i}.png"
        )
    np.save(folder / "latent_stylegan1.npy", rng.standard_normal((2, 16)))
    return folder


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # 10**18 listed that many missing files (the call never returned)
        ({"num_images": 10**18}, r"num_images must be an int in \[1, 100000\]"),
        ({"num_images": 1.5}, r"num_images must be an int"),  # was truncated to 1
        ({"mask_size": (20000, 20000)}, r"mask_size must be two ints \(H, W\) in 1\.\.8192"),
        (
            {"class_names": "abc"},
            "class_names must be a sequence of names, got 'abc'",
        ),  # 3 classes a, b, c
        ({"class_names": []}, r"class_names must name 1\.\.254 classes"),
        ({"require_images": "no"}, "require_images must be True or False"),  # truthy: required
        ({"min_class_pixels": 3, "small_class_value": "255"}, "small_class_value must be an int"),
    ],
)
def test_bad_arguments_are_named(release, kwargs, message):
    kwargs = {"class_names": CLASSES, **kwargs}
    with pytest.raises(ValueError, match=message):
        import_datasetgan_release(release, **kwargs)


def test_an_empty_folder_path_is_not_the_current_folder(release, monkeypatch):
    monkeypatch.chdir(release)  # a release in the current folder: "" used to read it
    with pytest.raises(ValueError, match="folder is an empty path"):
        import_datasetgan_release("", class_names=CLASSES)


def test_good_arguments_still_import(release):
    ann = import_datasetgan_release(
        release, class_names=CLASSES, num_images=np.int64(1), mask_size=(4, 4), require_images=False
    )
    assert len(ann) == 1 and ann.mask_resolution == (4, 4)
    assert ann.masks[0].tolist() == [[1] * 4, [1] * 4, [0] * 4, [0] * 4]
