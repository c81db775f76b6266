"""FeatureNovelty refuses what it cannot use with a ValueError that says why: annotated
maps of zero images (a bare ZeroDivisionError after a torch std() warning) and
reference pixels of another width than ``dims`` (a reshape error from inside torch, or
silently wrong references when the sizes happened to divide)."""

from __future__ import annotations

import warnings

import pytest
import torch
from test_novelty_inputs import maps

from dgan_data.novelty import FeatureNovelty


def test_annotated_maps_of_zero_images_are_a_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch std() warning on the way
        with pytest.raises(ValueError, match=r"need at least one annotated image.*N = 0"):
            FeatureNovelty(maps(0))
    FeatureNovelty(maps(1))  # control: one image is enough


@pytest.mark.parametrize("shape", [(5, 3), (3, 8), (8,)])
def test_reference_pixels_of_another_width_are_refused(shape):
    model = FeatureNovelty(maps(), dims=4)
    before = model.references.clone()
    with pytest.raises(ValueError, match=r"shape \(P, 4\), got \(" + ", ".join(map(str, shape))):
        model.add_references(torch.randn(shape))
    assert torch.equal(model.references, before)


def test_reference_pixels_of_the_right_width_are_added():
    model = FeatureNovelty(maps(), dims=4)
    count = len(model.references)
    model.add_references(torch.randn(6, 4))
    model.add_references(torch.empty(0))  # suggest's "nothing picked": no change
    assert len(model.references) == count + 6
    with pytest.raises(TypeError, match="pixels must be a torch tensor, got ndarray"):
        model.add_references(torch.randn(2, 4).numpy())
