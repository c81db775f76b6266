"""Soft labels vanish where the mask says out-of-frame, params select negative indices,
and a user augment's integer masks come out int64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_stream import random_interpreter, tiny_generator

from dgan_data.augment import BatchAugment
from dgan_data.stream import DatasetGANStream

K = 3


def _batch(B: int = 8, H: int = 32, W: int = 48):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 3, H, W, generator=g)
    m = torch.randint(0, K, (B, H, W), generator=g)
    return x, m, F.one_hot(m, K).permute(0, 3, 1, 2).float()


def test_soft_labels_are_zero_exactly_where_the_mask_is_out_of_frame():
    """About a fifth of those pixels carried a full distribution: the bilinear footprint
    reached into the frame where the mask's nearest source did not."""
    x, m, probs = _batch()
    _, masks, warped = BatchAugment().with_probabilities(
        x, m, probs, torch.Generator().manual_seed(0)
    )
    total = warped.sum(1)
    out_of_frame = masks == 255
    assert int(out_of_frame.sum()) > 500
    assert bool((total[out_of_frame] == 0).all())
    assert torch.allclose(total[~out_of_frame], torch.ones(()), atol=1e-5)


def test_params_select_a_negative_index_like_a_list():
    aug = BatchAugment()
    params = aug.sample_params(4, torch.Generator().manual_seed(0))
    last, also_last = params.select(-1), params.select(3)
    assert len(last) == 1
    for name, value in vars(last).items():
        assert torch.equal(value, getattr(also_last, name)), name
    with pytest.raises(IndexError, match="sample 4 of parameters for 4 samples"):
        params.select(4)
    with pytest.raises(IndexError, match="sample -5"):
        params.select(-5)


def _uint8_masks(images, masks, generator):
    return images, masks.to(torch.uint8)


def test_a_user_augments_uint8_masks_come_out_int64():
    G = tiny_generator()
    ds = DatasetGANStream(
        generator=G,
        interpreter=random_interpreter(G),
        batch_size=4,
        device="cpu",
        augment=_uint8_masks,
    )
    _, masks = next(iter(ds))
    assert masks.dtype == torch.int64
    F.cross_entropy(torch.zeros(4, 5, *masks.shape[1:]), masks, ignore_index=255)
