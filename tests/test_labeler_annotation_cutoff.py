"""A labeler samples as the interpreter's annotations were sampled: the truncation
cutoff too, not only psi. An interpreter fitted on annotations drawn with
``truncation_cutoff=2`` labeled a stream drawn with the architecture's cutoff (every
layer truncated), another distribution than the one it learnt, although
``sampling_settings`` records the cutoff for that purpose."""

from __future__ import annotations

import pytest
import torch
from test_stream import random_interpreter, tiny_generator

from dgan_data.labeler import Labeler


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G)
    interp.training_info = {**interp.training_info, "truncation_psi": 0.5, "truncation_cutoff": 2}
    return G, interp


def test_the_annotations_cutoff_is_the_default(models):
    G, interp = models
    assert Labeler(G, interp).truncation_cutoff == 2
    assert Labeler(G, interp, truncation_cutoff=3).truncation_cutoff == 3  # explicit wins


def test_the_samples_are_drawn_with_it(models):
    G, interp = models
    seeds = [0, 1, 2]
    default, _ = Labeler(G, interp).synthesize(seeds)
    explicit, _ = Labeler(G, interp, truncation_cutoff=2).synthesize(seeds)
    every_layer, _ = Labeler(G, interp, truncation_cutoff=G.num_ws).synthesize(seeds)
    assert torch.equal(default, explicit)
    assert not torch.allclose(default, every_layer)


def test_an_interpreter_without_a_cutoff_keeps_the_architecture_default(models):
    G, _ = models
    interp = random_interpreter(G)
    assert interp.training_info.get("truncation_cutoff") is None
    assert Labeler(G, interp).truncation_cutoff is None


@pytest.mark.parametrize("bad", ["2", 2.5, -1, True])
def test_an_interpreter_file_with_a_bad_cutoff_is_refused_naming_it(models, tmp_path, bad):
    from dgan_data.interpreter import Interpreter

    _, interp = models
    path = tmp_path / "interp.safetensors"
    saved = dict(interp.training_info)
    interp.training_info = {**saved, "truncation_cutoff": bad}
    try:
        interp.save(path)
    finally:
        interp.training_info = saved
    with pytest.raises(ValueError, match=r"interp\.safetensors: field .*truncation_cutoff"):
        Interpreter.load(path)
