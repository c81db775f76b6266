"""FeatureNovelty names bad settings and feature maps instead of failing inside torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgan_data.novelty import MAX_DIMS, FeatureNovelty


def maps(n: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, 8, 8, 8, generator=g), torch.randn(n, 4, 16, 16, generator=g)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": MAX_DIMS + 1}, rf"dims must be an int in \[1, {MAX_DIMS}\]"),
        ({"dims": 2.5}, "dims must be"),
        ({"grid": True}, "grid must be"),
        ({"references": "64"}, "references must be"),
        ({"quantile": "0.5"}, "quantile must be a number"),
        ({"quantile": float("nan")}, "quantile must be finite"),
        ({"seed": -1}, r"seed must be in \[0, 2\*\*63\)"),
        ({"seed": 1.5}, "seed must be an int"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureNovelty(maps(), **kwargs)


def test_maps_that_are_not_tensors_are_a_type_error():
    with pytest.raises(TypeError, match="annotated_features must hold torch tensors, got ndarray"):
        FeatureNovelty([m.numpy() for m in maps()])
    with pytest.raises(TypeError, match="must be a list of feature-map tensors, got Tensor"):
        FeatureNovelty(maps()[0])
    with pytest.raises(TypeError, match="real-valued"):
        FeatureNovelty([m > 0 for m in maps()])


def test_maps_of_different_image_counts_are_named():
    low, high = maps()
    with pytest.raises(ValueError, match=r"one image count for every map, got \[2, 3\]"):
        FeatureNovelty([low, high[:2]])
    model = FeatureNovelty([low, high], dims=4)
    with pytest.raises(ValueError, match=r"maps must hold one image count"):
        model.embed([low[:1], high])


def test_non_finite_annotated_features_are_refused():
    low, high = maps()
    high[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="annotated_features hold NaN or inf"):
        FeatureNovelty([low, high])


def test_good_maps_still_calibrate_and_score():
    model = FeatureNovelty(maps(), dims=np.int64(4), grid=8, seed=np.int64(2))
    novelty, emb = model.pixel_novelty([m[:1] for m in maps()])
    assert novelty.shape == (1, 8, 8) and emb.shape == (1, 8, 8, 4)
    assert bool(torch.isfinite(novelty).all()) and model.scale > 0
