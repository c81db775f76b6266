"""More yes/no arguments are bools, and devices are checked where the downstream
helpers take them: ``merge="no"`` ran the export's selection, ``distributed="no"``
all-reduced, and a device name torch does not know failed inside torch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dgan_data import Interpreter, export_dataset
from dgan_data.downstream.train import evaluate, real_batches, train_segmentation


class TinySegmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pair(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 3, 8, 8), torch.zeros(n, 8, 8, dtype=torch.long)


@pytest.mark.parametrize("flag", ["merge", "progress"])
def test_export_flags_are_bools_checked_before_any_model_loads(tmp_path, flag):
    with pytest.raises(ValueError, match=f"{flag} must be True or False"):
        export_dataset("no-such-preset", 4, tmp_path / "out", **{flag: "no"})
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["distributed", "progress"])
def test_evaluate_flags_are_bools(flag):
    with pytest.raises(ValueError, match=f"{flag} must be True or False"):
        evaluate(TinySegmenter(), pair(), 2, **{flag: "no"})


def test_train_segmentation_progress_is_a_bool():
    model = TinySegmenter()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="progress must be True or False"):
        train_segmentation(model, [pair()], 1, progress="no")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # not trained


def test_fit_features_progress_is_a_bool():
    feats = [[torch.randn(2, 4, 4)] for _ in range(2)]
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="progress must be True or False"):
        Interpreter.fit_features(
            feats, masks, 2, num_models=1, hidden=(4, 4), max_steps=1, progress="no"
        )


@pytest.mark.parametrize(
    "call",
    [
        lambda: evaluate(TinySegmenter(), pair(), 2, device="xyz"),
        lambda: train_segmentation(TinySegmenter(), [pair()], 1, device="xyz", progress=False),
        lambda: real_batches(*pair(), 2, device="xyz"),
    ],
    ids=["evaluate", "train_segmentation", "real_batches"],
)
def test_a_device_name_torch_does_not_know_is_named(call):
    with pytest.raises(ValueError, match="device 'xyz' is not a device name"):
        call()


def test_the_good_flags_still_work():
    result = evaluate(TinySegmenter(), pair(), 2, distributed=False, progress=False)
    assert result["num_images"] == 2 and 0.0 <= result["miou"] <= 1.0
    history = train_segmentation(TinySegmenter(), [pair()] * 2, 2, device="cpu", progress=False)
    assert history.steps == 2 and len(history.loss) == 2
