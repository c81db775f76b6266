"""AlbumentationsAugment: labels reach mask-reading transforms alone, stay aligned with
the image on any frame, and images that leave [0, 1] are an error, not black."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
A = pytest.importorskip("albumentations")

from dgan_data.augment import AlbumentationsAugment  # noqa: E402

K = 5


def _object_batch(B: int = 16, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images with one 6x6 object of class 3 in a corner, background 0."""
    x = torch.rand(B, 3, size, size, generator=torch.Generator().manual_seed(0))
    m = torch.zeros(B, size, size, dtype=torch.long)
    m[:, 50:56, 50:56] = 3
    return x, m


def test_crop_non_empty_mask_sees_the_labels():
    """With an always-1 channel beside the label every pixel looked non-empty, so the
    crop went anywhere and lost the object."""
    x, m = _object_batch()
    aug = AlbumentationsAugment(A.Compose([A.CropNonEmptyMaskIfExists(16, 16, p=1.0)]))
    _, out = aug(x, m, torch.Generator().manual_seed(0))
    assert out.shape == (16, 16, 16)
    assert bool((out == 3).flatten(1).any(1).all())


def test_mask_dropout_runs_and_drops_the_object():
    """MaskDropout read a 2-channel mask and failed inside OpenCV; now the dropped object
    is no longer labelled 3 and nothing outside it changes."""
    x, m = _object_batch(B=4)
    aug = AlbumentationsAugment(A.Compose([A.MaskDropout(max_objects=1, p=1.0)]))
    _, out = aug(x, m, torch.Generator().manual_seed(0))
    assert not bool((out == 3).any())
    outside = m != 3
    assert torch.equal(out[outside], m[outside])


def _label_coded_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-square images whose red channel encodes the label and green marks the frame."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randint(0, K, (16, 12, 20), generator=g)
    m = m.repeat_interleave(4, 1).repeat_interleave(4, 2)
    x = torch.empty(16, 3, 48, 80)
    x[:, 0] = m.float() / (K - 1)
    x[:, 1] = 0.5
    x[:, 2] = 0.25
    return x, m


def test_labels_follow_image_pixels_on_a_non_square_frame():
    """A 2-channel uint8 mask was warped slightly differently from the image by OpenCV
    (77 of 439,140 labels misplaced, some out-of-frame pixels labelled)."""
    affine = A.Affine(
        rotate=(-30, 30), translate_percent=0.15, scale=(0.8, 1.2), interpolation=0, p=1
    )
    aug = AlbumentationsAugment(A.Compose([affine]))
    mismatched = out_of_frame_labelled = in_frame = 0
    for seed in range(10):
        x, m = _label_coded_batch(seed)
        ox, om = aug(x, m, torch.Generator().manual_seed(seed))
        inside = (ox[:, 1] - 0.5).abs() < 0.01
        outside = ox[:, 1] < 0.01
        labels = (ox[:, 0] * (K - 1)).round().long()
        mismatched += int(((labels != om) & inside).sum())
        out_of_frame_labelled += int((om[outside] != 255).sum())
        in_frame += int(inside.sum())
    assert in_frame > 300_000 and int(outside.sum()) > 0
    assert mismatched == 0
    assert out_of_frame_labelled == 0


@pytest.mark.parametrize("image_dtype", ["float32", "uint8"])
def test_normalize_in_the_compose_is_refused_not_blackened(image_dtype):
    x, m = _object_batch(B=2)
    aug = AlbumentationsAugment(
        A.Compose([A.HorizontalFlip(p=1.0), A.Normalize()]), image_dtype=image_dtype
    )
    with pytest.raises(ValueError, match=r"not in \[0, 1\].*A\.Normalize.*'Normalize'"):
        aug(x, m, torch.Generator().manual_seed(0))


def test_float_results_in_the_unit_range_pass():
    """ToFloat after uint8 staging gives floats in [0, 1]: accepted, same pixels."""
    x, m = _object_batch(B=2)
    aug = AlbumentationsAugment(A.Compose([A.ToFloat()]), image_dtype="uint8")
    out, masks = aug(x, m, torch.Generator().manual_seed(0))
    assert torch.allclose(out, (x * 255).round() / 255, atol=1e-6)
    assert torch.equal(masks, m)
    assert np.isclose(float(out.max()), float(((x * 255).round() / 255).max()))
