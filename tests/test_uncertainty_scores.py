"""Class-mean image scores: every labeled class counts once, however small."""

from __future__ import annotations

import pytest
import torch

from dgan_data.uncertainty import class_mean_scores, image_scores


def test_hand_checked_class_means():
    labels = torch.tensor([[[0, 0], [0, 1]], [[2, 2], [255, 2]]])
    js = torch.tensor([[[0.1, 0.1], [0.1, 0.9]], [[0.2, 0.4], [5.0, 0.6]]])
    scores = class_mean_scores(js, labels, num_classes=3)
    # image 0: class 0 mean 0.1, class 1 mean 0.9 -> 0.5; image 1: class 2 mean 0.4
    # (the ignored pixel's 5.0 does not count)
    assert scores.tolist() == pytest.approx([0.5, 0.4])


def test_a_small_uncertain_part_outweighs_a_large_sure_region():
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[:, :2, :2] = 1  # a 4-pixel part
    js = torch.full((2, 8, 8), 0.05)
    js[0, :2, :2] = 0.6  # image 0: the part is uncertain
    js[1, 4:, :] = 0.12  # image 1: a large region mildly uncertain
    assert class_mean_scores(js, labels, 2)[0] > class_mean_scores(js, labels, 2)[1]
    top = image_scores(js, 0.1)
    assert top[0] > 0 and top[1] > 0  # both scores are defined; the orders may differ


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        class_mean_scores(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long), 2)
