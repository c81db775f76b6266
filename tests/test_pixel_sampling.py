"""Class-balanced pixel sampling of the interpreter's training."""

from __future__ import annotations

import pytest
import torch

from dgan_data.interpreter import Interpreter
from dgan_data.interpreter.fit import _pixel_sampler


def labels_with_counts(counts: list[int], ignore: int = 50) -> torch.Tensor:
    values = [k for k, c in enumerate(counts) for _ in range(c)] + [255] * ignore
    perm = torch.randperm(len(values), generator=torch.Generator().manual_seed(0))
    return torch.tensor(values)[perm]


@pytest.mark.parametrize(
    ("balance", "expected"), [(0.0, [0.9, 0.09, 0.01]), (1.0, [1 / 3, 1 / 3, 1 / 3])]
)
def test_class_shares_of_the_draws(balance, expected):
    labels = labels_with_counts([900, 90, 10])
    valid = (labels != 255).nonzero().squeeze(1)
    counts = torch.bincount(labels[valid], minlength=3)
    draw = _pixel_sampler(labels, valid, counts, balance)
    picks = draw(60_000, torch.Generator().manual_seed(1))
    assert bool((labels[picks] != 255).all())  # never an ignored pixel
    shares = torch.bincount(labels[picks], minlength=3).double() / len(picks)
    assert torch.allclose(shares, torch.tensor(expected, dtype=torch.float64), atol=0.01)
    # every pixel of the rare class can be drawn
    rare = set((labels == 2).nonzero().squeeze(1).tolist())
    assert rare <= set(picks.tolist()) or balance == 0.0


def test_half_balance_lies_between():
    labels = labels_with_counts([900, 100, 0])
    valid = (labels != 255).nonzero().squeeze(1)
    counts = torch.bincount(labels[valid], minlength=3)
    picks = _pixel_sampler(labels, valid, counts, 0.5)(40_000, torch.Generator().manual_seed(2))
    share = float((labels[picks] == 1).double().mean())
    assert share == pytest.approx(10 / (30 + 10), abs=0.01)  # sqrt(900) : sqrt(100)
    assert int((labels[picks] == 2).sum()) == 0  # an absent class is never drawn


def test_bad_balance_is_refused():
    labels = labels_with_counts([5, 5])
    valid = (labels != 255).nonzero().squeeze(1)
    with pytest.raises(ValueError, match="class_balance"):
        _pixel_sampler(labels, valid, torch.tensor([5, 5]), 1.5)


def test_fit_records_the_sampling():
    torch.manual_seed(0)
    feats = [[torch.randn(4, 4, 4), torch.randn(2, 8, 8)] for _ in range(2)]
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[:, :2, :2] = 1
    interp = Interpreter.fit_features(
        feats, masks, 2, num_models=2, max_steps=20, min_steps=1, class_balance=1.0, progress=False
    )
    assert interp.training_info["class_balance"] == 1.0
