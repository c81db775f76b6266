"""``LabeledBatch`` and ``Prediction`` print what they hold, shapes and dtypes, not every
value: their dataclass reprs printed each tensor, a screenful in a notebook."""

from __future__ import annotations

import torch

from dgan_data import LabeledBatch, Prediction


def test_labeled_batch_shows_shapes_and_leaves_out_what_is_none():
    batch = LabeledBatch(
        images=torch.zeros(2, 3, 4, 5), masks=torch.zeros(2, 4, 5, dtype=torch.int64),
        pixel_uncertainty=torch.zeros(2, 4, 5), image_uncertainty=torch.zeros(2),
        seeds=torch.tensor([7, 8]), probs=torch.zeros(2, 3, 4, 5, dtype=torch.float16),
    )  # fmt: skip
    assert repr(batch) == (
        "LabeledBatch(images=(2, 3, 4, 5) float32, masks=(2, 4, 5) int64, "
        "pixel_uncertainty=(2, 4, 5) float32, image_uncertainty=(2,) float32, "
        "seeds=(2,) int64, probs=(2, 3, 4, 5) float16)"
    )


def test_prediction_shows_shapes():
    pred = Prediction(
        labels=torch.zeros(1, 2, 2, dtype=torch.int64),
        pixel_uncertainty=torch.zeros(1, 2, 2),
        image_uncertainty=torch.zeros(1),
    )
    assert repr(pred) == (
        "Prediction(labels=(1, 2, 2) int64, pixel_uncertainty=(1, 2, 2) float32, "
        "image_uncertainty=(1,) float32)"
    )
    assert "tensor(" not in repr(pred)
