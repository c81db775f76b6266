"""A learning rate that blows the weights up within the last step: the loss check saw
such weights only at the next forward pass, so ``demo --lr 1e308 --steps 1`` exited 0
with a model that labels every pixel one class."""

from __future__ import annotations

import pytest
import torch

from dgan_data.downstream.train import build_segmentation_model, train_segmentation


def _batches(images: torch.Tensor, masks: torch.Tensor):
    while True:
        yield images, masks


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 64, generator=g), torch.randint(0, 3, (2, 64, 64), generator=g)


def test_weights_blown_up_by_the_last_step_are_refused():
    """One step: no forward pass follows to see them (with two, the second step's loss
    is NaN and refused as before)."""
    torch.manual_seed(0)
    net = build_segmentation_model(3, "unet")
    with pytest.raises(FloatingPointError, match=r"after step 1: .* not finite"):
        train_segmentation(net, _batches(*_data()), 1, lr=1e308, warmup=0.0, progress=False)


def test_a_sane_learning_rate_trains_to_finite_weights():
    torch.manual_seed(0)
    net = build_segmentation_model(3, "unet")
    history = train_segmentation(net, _batches(*_data()), 2, progress=False)
    assert history.steps == 2
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_no_evaluation_or_checkpoint_of_non_finite_weights(tmp_path):
    torch.manual_seed(0)
    net = build_segmentation_model(3, "unet")
    seen: list[int] = []

    def evaluate(model, step):
        seen.append(step)
        return {"miou": 0.0}

    with pytest.raises(FloatingPointError, match="after step 1:"):
        train_segmentation(
            net, _batches(*_data()), 3, lr=1e308, warmup=0.0, progress=False,
            eval_fn=evaluate, eval_every=1, checkpoint_dir=tmp_path, checkpoint_every=1,
        )  # fmt: skip
    assert seen == []
    assert not any(tmp_path.rglob("*.pt")) and not any(tmp_path.rglob("*.safetensors"))
