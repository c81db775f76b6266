"""Sizes and arguments of the Python API that exhausted memory or lost provenance:
a stream batch of 2**63 listed seeds until memory ran out, an interpreter pixel batch
of 10**9 never finished one step, ``samples_per_epoch=2**63`` failed at the first
iteration, and seeds given as an iterator were used up before they were recorded."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from dgan_data import DatasetGANStream, Labeler, load_generator, load_interpreter
from dgan_data.conventions import MAX_BATCH
from dgan_data.interpreter.checks import MAX_PIXEL_BATCH


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler(load_generator("toyface-14", device="cpu"), load_interpreter("toyface-14"))


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ({"batch_size": MAX_BATCH + 1}, f"batch_size must be an int in [1, {MAX_BATCH}]"),
        ({"generation_batch": 2**40}, f"generation_batch must be an int in [1, {MAX_BATCH}]"),
        ({"samples_per_epoch": 2**63}, f"samples_per_epoch must be an int in [1, {sys.maxsize}]"),
    ],
)
def test_stream_sizes_are_bounded_at_construction(option, words):
    with pytest.raises(ValueError) as err:
        DatasetGANStream("toyface-14", **option)
    assert words in str(err.value)


def test_stream_sizes_at_the_bound_are_accepted():
    stream = DatasetGANStream("toyface-14", batch_size=MAX_BATCH, samples_per_epoch=sys.maxsize)
    assert stream.batch_size == MAX_BATCH


def test_interpreter_pixel_batch_is_bounded():
    from dgan_data import Annotations, Interpreter

    G = load_generator("toyface-14", device="cpu")
    m = np.zeros((2, 64, 64), np.uint8)
    m[:, 32:] = 1
    ann = Annotations.from_arrays(masks=m, class_names=["bg", "fg"], seeds=[0, 1])
    with pytest.raises(ValueError, match=f"more than {MAX_PIXEL_BATCH:,} only exhaust memory"):
        Interpreter.fit(G, ann, num_models=1, batch_size=10**9, max_steps=1, progress=False)


def test_seeds_given_as_an_iterator_are_kept(labeler):
    batch = labeler.label(s for s in [5, 6])
    assert batch.seeds.tolist() == [5, 6]
    assert torch.equal(batch.masks, labeler.label([5, 6]).masks)


def test_a_seed_that_is_not_a_sequence_is_named(labeler):
    with pytest.raises(TypeError, match="seeds must be a sequence of ints, got int"):
        labeler.label(5)


def test_label_synthesized_checks_its_seeds_and_flags(labeler):
    img, feats = labeler.synthesize([1, 2])
    with pytest.raises(ValueError, match="1 seeds for 2 images"):
        labeler.label_synthesized(img, feats, [1])
    with pytest.raises(TypeError, match="seed 0 must be an int"):
        labeler.label_synthesized(img, feats, [1.7, 2])
    with pytest.raises(ValueError, match="out of range"):
        labeler.label_synthesized(img, feats, [1, -5])
    with pytest.raises(ValueError, match="probs must be True or False"):
        labeler.label_synthesized(img, feats, [1, 2], probs="yes")
    assert labeler.label_synthesized(img, feats, [1, 2]).seeds.tolist() == [1, 2]
