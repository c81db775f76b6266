"""Annotations.image_file/mask_file/latent_file: a bad sample index is named with the
number of samples, as a list would treat it (negative counts from the end)."""

from __future__ import annotations

import numpy as np
import pytest

from dgan_data.annotations import Annotations


def _three() -> Annotations:
    masks = np.zeros((3, 8, 8), dtype=np.uint8)
    return Annotations.from_arrays(masks=masks, class_names=["bg", "fg"], seeds=[5, 6, 7])


@pytest.mark.parametrize("method", ["image_file", "mask_file", "latent_file"])
def test_index_past_the_end_names_the_sample_count(method):
    ann = _three()
    with pytest.raises(IndexError, match=r"sample index 9 out of range.*3 samples \(0\.\.2\)"):
        getattr(ann, method)(9)
    with pytest.raises(IndexError, match=r"sample index -4 out of range"):
        getattr(ann, method)(-4)


@pytest.mark.parametrize("method", ["image_file", "mask_file", "latent_file"])
def test_non_integer_index_is_a_type_error(method):
    ann = _three()
    for bad in (1.0, "1", True, None):
        with pytest.raises(TypeError, match="sample index must be an int"):
            getattr(ann, method)(bad)


def test_negative_and_numpy_indices_work_like_a_list():
    ann = _three()
    assert ann.image_file(-1) == ann.image_file(2) == f"images/{ann.ids[2]}.png"
    assert ann.mask_file(np.int64(1)) == f"masks/{ann.ids[1]}.png"
    assert ann.latent_file(-3) == f"latents/{ann.ids[0]}.npy"
    assert ann.image_file(2) != ann.image_file(1)
