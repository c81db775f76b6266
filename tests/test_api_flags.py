"""Yes/no arguments of the API are bools: a string was read by its truthiness, so
``resume="no"`` resumed, ``overwrite="no"`` replaced a registered preset and
``dry_run="no"`` wrote nothing."""

from __future__ import annotations

import pytest
import torch

from dgan_data import DatasetGANStream, get_preset, load_generator, load_interpreter
from dgan_data.metrics.confusion import ConfusionMatrix


def test_register_preset_overwrite_no_does_not_replace():
    from dataclasses import replace

    from dgan_data.presets import register_preset

    preset = get_preset("toyface-14")
    with pytest.raises(ValueError, match="overwrite must be True or False"):
        register_preset(replace(preset, source="another"), overwrite="no")
    assert get_preset("toyface-14").source == preset.source


def test_import_masks_flags_are_bools(tmp_path):
    from dgan_data import import_masks

    with pytest.raises(ValueError, match="dry_run must be True or False"):
        import_masks(tmp_path, tmp_path, "png", dry_run="no")
    with pytest.raises(ValueError, match="keep_empty must be True or False"):
        import_masks(tmp_path, tmp_path, "png", keep_empty="yes")


def test_stream_compile_is_a_bool():
    with pytest.raises(ValueError, match="compile must be True or False"):
        DatasetGANStream("toyface-14", compile="no")


def test_predict_flags_are_bools():
    from dgan_data import Labeler

    labeler = Labeler(load_generator("toyface-14", device="cpu"), load_interpreter("toyface-14"))
    img, feats = labeler.synthesize([0])
    interp = labeler.interpreter
    maps = interp.prediction_maps(feats, img)
    for flag in ("return_probs", "check_finite", "compile"):
        with pytest.raises(ValueError, match=f"{flag} must be True or False"):
            interp.predict(maps, output_size=labeler.frame, **{flag: "no"})
    assert interp.predict(maps, output_size=labeler.frame, return_probs=False).probs is None


def test_confusion_and_training_flags_are_bools():
    from dgan_data.downstream.train import build_segmentation_model, train_segmentation

    with pytest.raises(ValueError, match="keep_per_image must be True or False"):
        ConfusionMatrix(3, keep_per_image="no")
    net = build_segmentation_model(3, "unet")
    data = [(torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64)))]
    with pytest.raises(ValueError, match="amp must be True or False"):
        train_segmentation(net, data, 1, amp="no", progress=False)
    with pytest.raises(ValueError, match=r"amp_dtype must be torch\.float16 or torch\.bfloat16"):
        train_segmentation(net, data, 1, amp=True, amp_dtype=torch.int8, progress=False)
