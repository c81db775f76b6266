"""``evaluate(model, [(images, masks)], K)``, whole batches in a list, is read as a dataset
of single items; the refusal now says so and names what works (it showed only the shape
``(1, B, 3, H, W)``)."""

from __future__ import annotations

import pytest
import torch

from dgan_data.downstream.train import build_segmentation_model, evaluate


def test_a_list_of_batches_is_refused_naming_an_iterator():
    model = build_segmentation_model(num_classes=3, arch="unet")
    images, masks = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3, 64, 64\) \(whole batches in "
                       r"a list or dataset\? .* iter\(batches\)\)"):  # fmt: skip
        evaluate(model, [(images, masks)], 3)
    by_batches = evaluate(model, iter([(images, masks)]), 3)  # what the message names
    as_items = evaluate(model, list(zip(images, masks, strict=True)), 3)
    assert by_batches["miou"] == pytest.approx(as_items["miou"])
