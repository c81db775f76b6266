"""Training and evaluation inputs that were used as if they were sound: ``ignore_index``
equal to a class id (that class never learned; ``evaluate`` refused it already), soft
labels with negative probabilities (a negative loss), NaN images in ``evaluate`` (scored
as an image), and ``Interpreter.save`` onto a folder (a raw IsADirectoryError)."""

from __future__ import annotations

import math

import pytest
import torch

from dgan_data.downstream.train import build_segmentation_model, evaluate, train_segmentation


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 64, generator=g), torch.randint(0, 3, (2, 64, 64), generator=g)


def test_an_ignore_index_that_is_a_class_is_refused():
    net = build_segmentation_model(3, "unet")
    with pytest.raises(ValueError, match=r"ignore_index=1 is a class id of the model \(0..2\)"):
        train_segmentation(net, [_data()], 1, ignore_index=1, progress=False)


def test_negative_soft_labels_are_refused():
    net = build_segmentation_model(3, "unet")
    images, masks = _data()
    probs = torch.full((2, 3, 64, 64), 1 / 3)
    probs[0, 0, 0, 0] = -0.5
    batch = {"image": images, "mask": masks, "probs": probs}
    with pytest.raises(ValueError, match="soft labels hold 1 values that are negative or NaN"):
        train_segmentation(net, [batch], 1, progress=False)
    probs[0, 0, 0, 0] = 1 / 3
    assert train_segmentation(net, [batch], 1, progress=False).steps == 1


def test_evaluate_refuses_non_finite_images():
    net = build_segmentation_model(3, "unet")
    images, masks = _data()
    images[1, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"evaluate: images 0..1 hold NaN or inf"):
        evaluate(net, (images, masks), 3)
    images[1, 0, 0, 0] = 0.5
    assert 0.0 <= evaluate(net, (images, masks), 3)["miou"] <= 1.0


def test_interpreter_save_onto_a_folder_is_named(tmp_path):
    from dgan_data import load_interpreter

    (tmp_path / "i.safetensors").mkdir()
    with pytest.raises(ValueError, match="is a folder; give the path of the file to write"):
        load_interpreter("toyface-14").save(tmp_path / "i.safetensors")
