"""ConfusionMatrix and the protocols name NaN logits, scores given for confusions and
devices that are not devices."""

from __future__ import annotations

import pytest
import torch

from dgan_data import ConfusionMatrix, five_fold_protocol, holdout_protocol
from dgan_data.metrics import per_image_confusion


def filled(k: int = 3) -> ConfusionMatrix:
    g = torch.Generator().manual_seed(0)
    cm = ConfusionMatrix(k, keep_per_image=True)
    cm.update(
        torch.randint(0, k, (4, 4, 4), generator=g), torch.randint(0, k, (4, 4, 4), generator=g)
    )
    return cm


def test_nan_logits_of_counted_pixels_are_refused_not_scored():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2, 0, 0] = float("nan")  # argmax would call this pixel class 2
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"pred \(logits\) holds NaN at 1 counted pixels"):
        cm.update(logits, target)
    assert int(cm.matrix.sum()) == 0  # nothing was counted
    with pytest.raises(ValueError, match="holds NaN"):
        per_image_confusion(logits, target, 3)


def test_nan_logits_of_ignored_pixels_and_minus_inf_logits_are_fine():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = 1.0
    logits[0, 2, 0, 0] = float("nan")
    logits[0, 0, 1, 1] = -float("inf")  # a log-probability of 0
    target = torch.ones(1, 2, 2, dtype=torch.long)
    target[0, 0, 0] = 255
    cm = ConfusionMatrix(3)
    cm.update(logits, target)
    assert int(cm.matrix[1, 1]) == 3 and int(cm.matrix.sum()) == 3


def test_a_confusion_matrix_object_given_to_a_protocol_says_what_to_give():
    with pytest.raises(ValueError, match=r"got a ConfusionMatrix object; give its counts"):
        five_fold_protocol({"a": filled(), "b": filled()})
    result = five_fold_protocol({"a": filled().per_image(), "b": filled().per_image()}, num_folds=2)
    assert 0.0 <= result.mean <= 1.0


def test_a_score_given_for_a_confusion_matrix_is_named():
    with pytest.raises(
        ValueError, match=r"test of 'a': .* got float 0\.3 \(a score is not a confusion matrix\)"
    ):
        holdout_protocol({"a": filled().matrix}, {"a": 0.3})
    with pytest.raises(ValueError, match="got NoneType None"):
        holdout_protocol({"a": None}, {"a": filled().matrix})


@pytest.mark.parametrize("device", ["xyz", 3.5])
def test_a_device_that_is_not_a_device_is_a_value_error(device):
    with pytest.raises(ValueError, match="is not a device name"):
        ConfusionMatrix(3, device=device)
