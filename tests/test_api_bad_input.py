"""Public API calls with bad arguments: a clear ValueError naming the argument, not a
silently wrong result (seeds folded onto others, names split into characters, NaN
labels read as class 0, training that diverged or climbed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_stream import random_interpreter, tiny_generator

from dgan_data import Annotations, Interpreter, Labeler, Preset, preview
from dgan_data.downstream.train import build_segmentation_model, train_segmentation
from dgan_data.suggest import candidate_seeds, suggest_annotations


@pytest.fixture(scope="module")
def tiny():
    G = tiny_generator()
    return G, random_interpreter(G)


@pytest.mark.parametrize("seed", [2**64, 2**63, -1, 1.5, "1", True])
def test_seeds_outside_the_int64_range_or_not_ints_are_refused(seed):
    with pytest.raises(ValueError, match="seed must be"):
        candidate_seeds(seed, 2)


def test_preview_and_suggest_refuse_bad_seeds_before_generating(tiny, tmp_path):
    G, interp = tiny
    with pytest.raises(ValueError, match="seed must be"):
        preview(generator=G, interpreter=interp, num=2, seed=2**64, out=tmp_path / "p.png")
    labeler = Labeler(G, interp, device="cpu")
    with pytest.raises(ValueError, match="seed must be"):
        suggest_annotations(labeler, 1, pool=2, seed=1.5)


@pytest.mark.parametrize("weight", [math.nan, math.inf])
def test_suggest_refuses_non_finite_weights(tiny, weight):
    labeler = Labeler(*tiny, device="cpu")
    with pytest.raises(ValueError, match="weights must be 4 numbers >= 0"):
        suggest_annotations(labeler, 1, pool=2, weights=(1.0, weight, 0.5, 1.0))


@pytest.mark.parametrize("names", ["abc", {"a", "b", "c"}, ["a", "", "c"], [1, 2, 3]])
def test_class_names_must_be_a_sequence_of_names(names):
    masks = np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="class_names must be"):
        Annotations.from_arrays(masks=masks, class_names=names, seeds=[0])
    with pytest.raises(ValueError, match="class_names must be"):
        Preset(name="p", class_names=names, num_classes=3, label_resolution=(4, 4),
               image_resolution=(4, 4), architecture="stylegan2")  # fmt: skip


def test_preset_names_with_a_trailing_newline_are_refused():
    with pytest.raises(ValueError, match="preset name"):
        Preset(name="abc\n", class_names=("a", "b"), num_classes=2, label_resolution=(4, 4),
               image_resolution=(4, 4), architecture="stylegan2")  # fmt: skip


@pytest.mark.parametrize("cutoff", [-3, 0, 1.5, "a", True])
def test_labeler_refuses_a_nonsense_truncation_cutoff(tiny, cutoff):
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        Labeler(*tiny, device="cpu", truncation_cutoff=cutoff)


@pytest.mark.parametrize("psi", [2.5, 1e30, -0.1, math.nan, "0.7", True])
def test_every_entry_point_bounds_the_truncation_psi(tiny, tmp_path, psi):
    """The commands' [0, 2] bound holds in the API too: psi 1e30 wrote black images and
    NaN wrote NaN latents to an annotation folder."""
    from dgan_data import DatasetGANStream
    from dgan_data.annotations.sample import sample_annotation_folder

    G, interp = tiny
    with pytest.raises(ValueError, match="truncation_psi must be"):
        Labeler(G, interp, device="cpu", truncation_psi=psi)
    with pytest.raises(ValueError, match="truncation_psi must be"):
        DatasetGANStream(generator=G, interpreter=interp, device="cpu", truncation_psi=psi)
    with pytest.raises(ValueError, match="truncation_psi must be"):
        sample_annotation_folder(G, 2, tmp_path / "ann", truncation_psi=psi)
    assert not (tmp_path / "ann").exists()


def test_the_bound_admits_its_ends(tiny):
    for psi in (0.0, 2.0):
        assert Labeler(*tiny, device="cpu", truncation_psi=psi).truncation_psi == psi


@pytest.mark.parametrize("batch_size", [0, 1.5, True])
def test_sample_annotation_folder_refuses_a_nonsense_batch_size(tiny, tmp_path, batch_size):
    from dgan_data.annotations.sample import sample_annotation_folder

    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        sample_annotation_folder(tiny[0], 2, tmp_path / "ann", batch_size=batch_size)


def test_nan_features_are_refused_not_labeled_background(tiny):
    G, interp = tiny
    w = G.mapping(torch.randn(2, G.z_dim))
    _, feats = G.synthesize(w)
    feats = [f.clone() for f in feats]
    feats[0][1] = math.nan  # item 1 only
    with pytest.raises(ValueError, match=r"batch item\(s\) \[1\] hold NaN or inf"):
        interp.predict(feats, impl="rows")
    # the labeler's own check (per sample, NonFiniteOutputError) is left to it
    pred = interp.predict(feats, impl="rows", check_finite=False)
    assert math.isnan(float(pred.image_uncertainty[1]))


def test_interpreter_training_that_diverges_raises(tiny):
    G, _ = tiny
    w = G.mapping(torch.randn(2, G.z_dim))
    _, feats = G.synthesize(w)
    per_image = [[f[i : i + 1] for f in feats] for i in range(2)]
    masks = torch.randint(0, 3, (2, 16, 16))
    with pytest.raises(FloatingPointError, match="diverged"):
        Interpreter.fit_features(per_image, masks, 3, 2, lr=1e30, max_steps=20, min_steps=1,
                                 progress=False)  # fmt: skip


def _batches(images: torch.Tensor, masks: torch.Tensor):
    while True:
        yield images, masks


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ({"grad_clip": -1.0}, "grad_clip must be in [0, inf], got -1.0"),
        ({"grad_clip": 0.0}, "grad_clip must be None or > 0"),
        ({"warmup": 5.0}, "warmup (a share of the steps) must be in [0, 1)"),
        ({"warmup": math.nan}, "warmup"),
        ({"lr": 0.0}, "lr must be > 0"),
    ],
)
def test_train_segmentation_refuses_nonsense_settings(option, words):
    torch.manual_seed(0)
    net = build_segmentation_model(3, "unet")
    images, masks = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    with pytest.raises(ValueError, match=__import__("re").escape(words)):
        train_segmentation(net, _batches(images, masks), 2, progress=False, **option)


def test_train_segmentation_refuses_byte_images_float_masks_and_a_nan_loss():
    torch.manual_seed(0)
    net = build_segmentation_model(3, "unet")
    images, masks = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    with pytest.raises(ValueError, match="float images in \\[0, 1\\] and integer masks"):
        train_segmentation(net, _batches((images * 255).byte(), masks), 1, progress=False)
    with pytest.raises(ValueError, match="integer masks"):
        train_segmentation(net, _batches(images, masks.float() + 0.7), 1, progress=False)
    nan_images = images.clone()
    nan_images[0, 0, 0, 0] = math.nan
    with pytest.raises(FloatingPointError, match="the loss is nan"):
        train_segmentation(net, _batches(nan_images, masks), 2, progress=False)
