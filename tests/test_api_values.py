"""Values the API took and used (or failed on deep inside torch): a zoom of 1e300 gave
NaN images, an augment's ignore_index of 1 labelled padding as class 1, ASPP rates of 0
failed at the first forward pass, a string threshold passed as a number, an empty or
repeated class-name list was accepted, np.float32(0.7) was "not a finite number", a
truncation centre of the wrong size failed in a broadcast, and an Interpreter passed as
the generator raised AttributeError."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgan_data import (
    Annotations,
    BatchAugment,
    DatasetGANStream,
    Interpreter,
    Labeler,
    load_generator,
    load_interpreter,
    sample_annotation_folder,
)
from dgan_data.annotations import AnnotationError
from dgan_data.augment.batch import MAX_ZOOM
from dgan_data.downstream.models import build_deeplab


@pytest.fixture(scope="module")
def G():  # noqa: N802 (the generator, as in the API)
    return load_generator("toyface-14", device="cpu")


@pytest.mark.parametrize("scale", [(1e-300, 1e300), (0.5, MAX_ZOOM * 2), (1 / MAX_ZOOM / 2, 1.0)])
def test_zoom_is_bounded(scale):
    with pytest.raises(ValueError, match="scale must lie in"):
        BatchAugment(scale=scale)
    assert BatchAugment(scale=(1 / MAX_ZOOM, MAX_ZOOM)).scale == (1 / MAX_ZOOM, MAX_ZOOM)


def test_augment_ignore_index_must_be_the_streams():
    with pytest.raises(ValueError, match=r"ignore_index must be an int in \[0, 255\]"):
        BatchAugment(ignore_index=300)
    with pytest.raises(ValueError, match="padding would be labelled class 1"):
        DatasetGANStream("toyface-14", augment=BatchAugment(ignore_index=1))


@pytest.mark.parametrize("rates", [(0, 0, 0), (-1, 2, 3), (), "abc", (1.5, 2, 3), (1, 2)])
def test_atrous_rates_are_three_positive_ints(rates):
    with pytest.raises(ValueError, match="atrous_rates must be 3 ints"):
        build_deeplab(3, atrous_rates=rates)


def test_good_atrous_rates_build():
    net = build_deeplab(3, atrous_rates=(1, 2, 3)).eval()
    assert net(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_thresholds_given_as_strings_are_refused(G):
    with pytest.raises(ValueError, match="drop_uncertain must be a number"):
        DatasetGANStream("toyface-14", drop_uncertain="0.1")
    with pytest.raises(ValueError, match="ignore_uncertain_pixels must be a number"):
        Labeler(G, load_interpreter("toyface-14"), ignore_uncertain_pixels="0.2")


def test_class_names_empty_or_repeated_are_refused(G):
    interp = load_interpreter("toyface-14")
    with pytest.raises(ValueError, match="class_names is empty"):
        Labeler(G, interp, class_names=[])
    with pytest.raises(ValueError, match="duplicate class names"):
        Labeler(G, interp, class_names=["a"] * interp.num_classes)
    assert Labeler(G, interp).class_names == list(interp.class_names)


def _masks() -> np.ndarray:
    m = np.zeros((2, 64, 64), np.uint8)
    m[:, 32:] = 1
    return m


def test_annotation_psi_takes_numpy_numbers_and_keeps_the_bound():
    ann = Annotations.from_arrays(
        masks=_masks(), class_names=["bg", "fg"], seeds=[0, 1], truncation_psi=np.float32(0.7)
    )
    assert isinstance(ann.truncation_psi, float) and abs(ann.truncation_psi - 0.7) < 1e-6
    with pytest.raises(AnnotationError, match="truncation_psi"):
        Annotations.from_arrays(
            masks=_masks(), class_names=["bg", "fg"], seeds=[0, 1], truncation_psi=5.0
        )


def test_a_truncation_centre_of_the_wrong_size_is_named(G):
    ann = Annotations.from_arrays(masks=_masks(), class_names=["bg", "fg"], seeds=[0, 1],
                                  truncation_center=torch.zeros(3), truncation_psi=0.7)  # fmt: skip
    with pytest.raises(AnnotationError, match=r"truncation_center has shape \(3,\)"):
        ann.latents_w(G)


def test_fit_names_a_generator_that_is_not_one(G):
    ann = Annotations.from_arrays(masks=_masks(), class_names=["bg", "fg"], seeds=[0, 1])
    for not_g in (None, load_interpreter("toyface-14")):
        with pytest.raises(TypeError, match="G must be a generator"):
            Interpreter.fit(not_g, ann, num_models=1, max_steps=1, progress=False)


def test_repeated_sample_seeds_are_named(G, tmp_path):
    with pytest.raises(ValueError, match="repeated: 1"):
        sample_annotation_folder(G, 2, tmp_path / "a", seeds=[1, 1], class_names=["a", "b"])
    assert not (tmp_path / "a").exists()
