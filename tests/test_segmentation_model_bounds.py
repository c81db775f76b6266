"""The segmentation-model builders bound what a checkpoint's config can ask for.

A saved model's ``config`` is rebuilt before its weights are read. ``decoder_channels``
100000 (DeepLab) or ``[100000, 8, 8]`` (U-Net) made torch try to allocate 200 and 360 GB
(a RuntimeError from the allocator, or the machine's memory on a large one), and
``image_size`` 10**9 or a U-Net ``encoder_depth`` of 99 were accepted or failed inside
smp. Each is now refused before anything is built, named by the checkpoint's path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgan_data.downstream.models import (
    MAX_DECODER_CHANNELS,
    build_deeplab,
    build_unet,
    load_segmentation_model,
    save_segmentation_model,
)


def test_the_bounds():
    assert MAX_DECODER_CHANNELS == 2048
    with pytest.raises(
        ValueError, match=r"decoder_channels must be an int in \[1, 2048\], got 2049"
    ):
        build_deeplab(3, decoder_channels=2049)
    with pytest.raises(ValueError, match=r"image_size must be an int in \[1, 8192\], got 8193"):
        build_deeplab(3, image_size=8193)
    with pytest.raises(
        ValueError, match=r"decoder_channels entries must be an int in \[1, 2048\], got 100000"
    ):
        build_unet(3, "resnet18", 3, [100000, 8, 8])
    with pytest.raises(ValueError, match=r"encoder_depth must be an int in \[1, 5\], got 6"):
        build_unet(3, "resnet18", 6, [8] * 6)
    with pytest.raises(ValueError, match=r"image_size must be an int in \[1, 8192\], got 10000"):
        build_unet(3, "resnet18", 3, [16, 8, 8], image_size=10_000)
    with pytest.raises(ValueError, match=r"decoder_channels must be a list of ints, got 16"):
        build_unet(3, "resnet18", 3, 16)


def _tampered(tmp_path: Path, model, change: dict) -> Path:
    path = save_segmentation_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"] = {**payload["config"], **change}
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decoder_channels": 100000}, r"decoder_channels must be an int in \[1, 2048\]"),
        ({"image_size": 10**9}, r"image_size must be an int in \[1, 8192\], got 1000000000"),
    ],
)
def test_a_deeplab_checkpoint_asking_too_much_is_named(tmp_path, change, message):
    path = _tampered(tmp_path, build_deeplab(3, image_size=32, decoder_channels=16), change)
    with pytest.raises(ValueError, match=rf"m\.pt: config does not describe a model: {message}"):
        load_segmentation_model(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decoder_channels": [100000, 8, 8]}, r"decoder_channels entries must be an int in "),
        ({"encoder_depth": 99}, r"encoder_depth must be an int in \[1, 5\], got 99"),
        ({"decoder_channels": 100000}, r"decoder_channels must be a list of ints, got 100000"),
    ],
)
def test_a_unet_checkpoint_asking_too_much_is_named(tmp_path, change, message):
    model = build_unet(3, "resnet18", 3, [16, 8, 8], image_size=32)
    path = _tampered(tmp_path, model, change)
    with pytest.raises(ValueError, match=rf"m\.pt: config does not describe a model: {message}"):
        load_segmentation_model(path)


def test_models_within_the_bounds_still_round_trip(tmp_path):
    model = build_unet(3, "resnet18", 3, [16, 8, 8], image_size=32)
    back = load_segmentation_model(save_segmentation_model(model, tmp_path / "u.pt"))
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    assert build_deeplab(3, image_size=8192, decoder_channels=16).config["image_size"] == 8192


def test_the_shared_width_check_used_by_both_unet_builders():
    from dgan_data.conventions import check_decoder_widths

    assert check_decoder_widths((32, 16, 16), 3, 64) == [32, 16, 16]
    with pytest.raises(
        ValueError, match=r"^decoder_channels entries must be an int in \[1, 64\], got 65$"
    ):
        check_decoder_widths([65, 8, 8], 3, 64)
    with pytest.raises(
        ValueError,
        match=r"^decoder_channels \[8, 8\] needs one entry per encoder level \(encoder_depth=3\)$",
    ):
        check_decoder_widths([8, 8], 3, 64)
    for bad in ("abc", 16, None):
        with pytest.raises(ValueError, match=r"^decoder_channels must be a list of ints"):
            check_decoder_widths(bad, 3, 64)
