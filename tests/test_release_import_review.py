"""Importing a DatasetGAN release folder (review): padded mask names, gaps in the
numbering and what ``num_images`` leaves out, non-finite float masks, and the
nearest-neighbour resize the release does with OpenCV."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from dgan_data import import_datasetgan_release
from dgan_data.annotations.format import AnnotationError

NAMES = ["background", "part"]


def _release(folder, masks, num_latents=4):
    folder.mkdir()
    for name, mask in masks.items():
        np.save(folder / name, mask)
    np.save(
        folder / "latent_stylegan1.npy", np.random.default_rng(0).normal(size=(num_latents, 512))
    )
    return folder


def _problems(folder, **kwargs):
    with pytest.raises(AnnotationError) as err:
        import_datasetgan_release(folder, class_names=NAMES, require_images=False, **kwargs)
    return err.value.problems


def test_zero_padded_mask_names_are_named(tmp_path):
    # image_mask01.npy was counted as mask 1 and never opened: "missing ;" (an empty
    # list) and a request for an image_mask2.npy nobody made
    ones = np.ones((8, 8), np.uint8)
    beside = _release(tmp_path / "a", {f"image_mask{i}.npy": ones for i in ("0", "1", "01")})
    assert _problems(beside) == [
        "image_mask01.npy: a second file for mask 1 beside image_mask1.npy; remove one"
    ]
    alone = _release(tmp_path / "b", {"image_mask00.npy": ones, "image_mask01.npy": ones})
    problems = _problems(alone)
    assert len(problems) == 2 and "rename it image_mask1.npy" in problems[1]
    assert all("not zero-padded" in p for p in problems)


def test_a_gap_names_what_num_images_would_leave_out(tmp_path, caplog):
    ones = np.ones((8, 8), np.uint8)
    folder = _release(tmp_path / "r", {f"image_mask{i}.npy": ones for i in (0, 1, 3)})
    with caplog.at_level(logging.INFO, logger="dgan_data"):
        problems = _problems(folder)
    assert problems == [  # once, not again as "image_mask2.npy: missing"
        "mask files are not numbered 0..2: missing image_mask2.npy; renumber them, or pass "
        "num_images=2 to import image_mask0..1 only (leaving out image_mask3.npy)"
    ]
    assert "latents" not in caplog.text  # "using the first 3" of an import that failed
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dgan_data"):
        ann = import_datasetgan_release(folder, class_names=NAMES, require_images=False,
                                        num_images=2)  # fmt: skip
    assert len(ann) == 2
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "leaves out 1 mask file: image_mask3.npy" in warned[0].message


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_a_non_finite_float_mask_is_named(tmp_path, value):
    mask = np.zeros((8, 8), np.float32)
    mask[0, 0] = value
    folder = _release(tmp_path / "r", {"image_mask0.npy": mask}, num_latents=1)
    with np.errstate(invalid="raise"):  # no "invalid value encountered in cast"
        assert _problems(folder) == ["image_mask0.npy: holds NaN or infinite values"]


@pytest.mark.parametrize(
    ("size_in", "size_out"),
    [(186, 64), (372, 256), (416, 384), (2, 394), (1024, 512), (384, 128), (7, 3)]
    + [(h, w) for h in range(1, 120, 7) for w in range(1, 200, 13)],
)
def test_mask_size_picks_the_rows_opencv_picks(size_in, size_out):
    # the release resizes its labels with cv2.resize(..., INTER_NEAREST); torch's
    # nearest rounded exact boundaries the other way (186 -> 64: row 32 took 93, not 92)
    from dgan_data.annotations.datasetgan import _resize_nearest

    ids = np.arange(size_in * 3).reshape(size_in, 3) % 251
    ours = _resize_nearest(ids.astype(np.int64), (size_out, 5))
    theirs = cv2.resize(ids.astype(np.uint8), (5, size_out), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(ours, theirs)


def test_mask_size_applies_to_the_imported_masks(tmp_path):
    mask = (np.arange(186)[:, None] % 2).repeat(10, axis=1).astype(np.uint8)
    folder = _release(tmp_path / "r", {"image_mask0.npy": mask}, num_latents=1)
    ann = import_datasetgan_release(folder, class_names=NAMES, require_images=False,
                                    mask_size=(64, 10))  # fmt: skip
    expected = cv2.resize(mask, (10, 64), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(ann.masks[0].numpy(), expected)
