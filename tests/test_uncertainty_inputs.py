"""The uncertainty functions name an input of the wrong type instead of failing inside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgan_data.uncertainty import (
    StreamingQuantile,
    class_mean_scores,
    entropy,
    image_scores,
    js_divergence,
)

PROBS = torch.softmax(torch.randn(3, 2, 4, 2, 2, generator=torch.Generator().manual_seed(0)), 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: js_divergence(PROBS.numpy()), r"probs must be a torch\.Tensor, got ndarray"),
        (lambda: js_divergence(PROBS.tolist()), r"probs must be a torch\.Tensor, got list"),
        (
            lambda: js_divergence(PROBS > 0.5),
            r"probs must hold real numbers, got dtype torch\.bool",
        ),
        (
            lambda: js_divergence(PROBS.to(torch.complex64)),
            r"real numbers, got dtype torch\.complex64",
        ),
        (lambda: entropy([0.5, 0.5], dim=0), r"probs must be a torch\.Tensor, got list"),
        (lambda: image_scores(np.ones((2, 3, 3))), r"pixel_uncertainty must be a torch\.Tensor"),
        (lambda: image_scores(torch.ones(2, 3, 3, dtype=torch.bool)), r"real numbers"),
        (
            lambda: image_scores(torch.ones(2, 3, 3), valid=np.ones((2, 3, 3), bool)),
            r"valid must be",
        ),
        (
            lambda: class_mean_scores(
                np.ones((2, 3, 3)), torch.zeros(2, 3, 3, dtype=torch.long), 2
            ),
            r"pixel_uncertainty must be",
        ),
        (
            lambda: class_mean_scores(torch.ones(2, 3, 3), np.zeros((2, 3, 3), int), 2),
            r"labels must be a torch\.Tensor",
        ),
    ],
)
def test_a_non_tensor_or_non_real_input_is_a_type_error_naming_it(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_the_valid_inputs_still_score():
    # an integer one-hot ensemble is a real input: two models that disagree everywhere
    one_hot = torch.zeros(2, 1, 2, 1, 1, dtype=torch.long)
    one_hot[0, :, 0] = 1
    one_hot[1, :, 1] = 1
    assert torch.allclose(js_divergence(one_hot), torch.full((1, 1, 1), float(np.log(2))))
    assert image_scores(torch.ones(2, 3, 3)).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("bad", ["0.5", b"1", True, np.bool_(False), object()])
def test_streaming_quantile_refuses_a_score_that_is_not_a_number(bad):
    q = StreamingQuantile(0.5)
    with pytest.raises(ValueError, match="a score must be a number"):
        q.update(bad)
    assert q.seen == 0


def test_streaming_quantile_keep_decides_nothing_when_a_later_score_is_bad():
    q = StreamingQuantile(0.5)
    with pytest.raises(ValueError, match="a score must be a number, got 'x'"):
        q.keep([0.1, 0.2, "x"])
    assert q.seen == 0 and q.state_dict()["recent"] == []
    with pytest.raises(ValueError, match="scores must be numbers, one per image, got 'abc'"):
        q.keep("abc")  # a string is not three scores
    assert q.seen == 0


def test_streaming_quantile_keep_takes_one_score_per_image():
    q = StreamingQuantile(0.5)
    with pytest.raises(ValueError, match=r"one score per image \(B,\), got shape \(2, 2\)"):
        q.keep(torch.rand(2, 2))
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        q.keep(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="real numbers"):
        q.keep(torch.tensor([True, False]))
    assert q.seen == 0
    assert q.keep(np.array([1.0, 2.0, float("nan")])).tolist() == [True, False, False]
    assert q.seen == 3
