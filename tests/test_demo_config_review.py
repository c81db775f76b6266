"""API settings checked up front (review): ``run_demo`` refuses lr, eval_every,
figure_rows and validation_count before ``out`` is made (a validation set past pool seed
9000 took the 16 training images of each draw), and ``Interpreter.fit_features`` names
an image without feature maps."""

from __future__ import annotations

import math

import pytest

from dgan_data.downstream.demo import (
    FEWSHOT_START,
    VALIDATION_START,
    DemoConfig,
    _check_config,
    run_demo,
)
from dgan_data.toy.render import split_seeds

BAD = [
    ({"lr": 0.0}, "lr must be > 0"),
    ({"lr": -1.0}, "lr must be"),
    ({"lr": math.nan}, "lr must be finite"),
    ({"eval_every": -5}, "eval_every must be >= 0"),
    ({"figure_rows": 0}, "figure_rows must be >= 1"),
    ({"eval_every": 1, "validation_count": 0}, r"validation_count must be in 1\.\.1000"),
    ({"eval_every": 1, "validation_count": 1001}, r"validation_count must be in 1\.\.1000"),
]


@pytest.mark.parametrize(("settings", "message"), BAD)
def test_nonsense_demo_settings_are_refused_before_out_is_made(tmp_path, settings, message):
    out = tmp_path / "demo"
    with pytest.raises(ValueError, match=message):
        run_demo(DemoConfig.quick_config(out=str(out), progress=False, **settings))
    assert not out.exists()  # lr=0 rendered the test set into it first


def test_the_largest_validation_set_stays_clear_of_the_few_shot_images():
    most = FEWSHOT_START - VALIDATION_START
    _check_config(DemoConfig.quick_config(out="x", eval_every=1, validation_count=most))
    validation = set(split_seeds("pool", VALIDATION_START, most))
    few_shot = set(split_seeds("pool", FEWSHOT_START, 16))
    assert validation.isdisjoint(few_shot)
    assert set(split_seeds("pool", VALIDATION_START, most + 1)) & few_shot  # why the bound


@pytest.mark.parametrize("device", ["cpu", None])
def test_fit_features_names_an_image_without_feature_maps(device):
    # with device=None (the default) it was an IndexError from first[0].device
    import torch

    from dgan_data.interpreter import Interpreter

    masks = torch.zeros(2, 8, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="image 0 has no feature maps"):
        Interpreter.fit_features([[], []], masks, 3, device=device, max_steps=2, progress=False)
