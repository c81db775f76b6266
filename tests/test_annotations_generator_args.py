"""Annotations' generator methods check their arguments before any work: a G that is not
a generator (None, an interpreter) is a TypeError naming it, not an AttributeError from
inside; batch sizes, tolerances and devices are checked like everywhere else."""

from __future__ import annotations

import numpy as np
import pytest

from dgan_data import Annotations, load_generator
from dgan_data.conventions import check_generator
from dgan_data.interpreter import Interpreter


@pytest.fixture(scope="module")
def generator(reference_dir):
    return load_generator(reference_dir / "rosinality_stylegan2_32px.pt")


def _ann() -> Annotations:
    masks = np.zeros((2, 32, 32), dtype=np.uint8)
    return Annotations.from_arrays(masks=masks, class_names=["bg", "fg"], seeds=[3, 4])


@pytest.mark.parametrize(
    "call",
    [
        lambda ann, g: ann.validate(g),
        lambda ann, g: ann.latents_w(g),
        lambda ann, g: ann.generate_images(g),
        lambda ann, g: ann.with_generated_images(g),
    ],
    ids=["validate", "latents_w", "generate_images", "with_generated_images"],
)
def test_a_generator_that_is_not_one_is_named(call):
    for not_g in (None, "G.pkl"):
        with pytest.raises(TypeError, match=r"G must be a generator .*got (NoneType|str)"):
            call(_ann(), not_g)


def test_the_check_lists_the_missing_methods():
    with pytest.raises(TypeError, match=r"got object \(no mapping, synthesize, fingerprint"):
        check_generator(object())
    check_generator(object(), needs=())  # nothing needed, nothing missing


def test_an_interpreter_is_not_a_generator():
    interp = Interpreter([(4, 8, 8)], 2, num_models=1)
    with pytest.raises(TypeError, match=r"got Interpreter \(no mapping, synthesize"):
        _ann().latents_w(interp)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tolerance": -1}, r"tolerance must be an int in \[0, 255\]"),
        ({"tolerance": "2"}, "tolerance must be an int"),  # a str < int TypeError, late
        ({"tolerance": 2.5}, "tolerance must be an int"),
        ({"mean_tolerance": float("nan")}, "mean_tolerance"),  # every sample failed
        ({"batch_size": 0}, r"batch_size must be an int in \[1, 65536\]"),
    ],
)
def test_validate_checks_its_settings_first(generator, kwargs, message):
    G = generator
    ann = _ann().with_generated_images(G)
    with pytest.raises(ValueError, match=message):
        ann.validate(G, **kwargs)
    assert len(ann.validate(G)) == 2  # and the good call still passes


def test_batch_sizes_and_devices_are_checked(generator):
    G = generator
    ann = _ann()
    for bad in (0, -1, 10**9):  # 0 was range()'s error, -1 torch.cat of nothing
        with pytest.raises(ValueError, match="batch_size must be an int"):
            ann.generate_images(G, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size must be an int"):
            ann.with_generated_images(G, batch_size=bad)
    with pytest.raises(ValueError, match="device"):
        ann.latents_w(G, device="gpu0")
    assert tuple(ann.generate_images(G, batch_size=1).shape) == (2, 3, 32, 32)
