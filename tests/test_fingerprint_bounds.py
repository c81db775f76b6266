"""A generator fingerprint is None or a string of at most 128 characters wherever it is
written: annotation folders now check it as interpreter files always did. A generator
whose ``fingerprint()`` returned 123 wrote a folder that ``Annotations.load`` refused
once its masks were drawn, and 1,000 characters were written and read back unbounded."""

from __future__ import annotations

import numpy as np
import pytest

from dgan_data import Annotations, load_generator
from dgan_data.annotations import sample_annotation_folder
from dgan_data.conventions import MAX_FINGERPRINT_CHARS, check_fingerprint
from dgan_data.interpreter import Interpreter, feature_layout


@pytest.fixture(scope="module")
def generator(reference_dir):
    return load_generator(reference_dir / "rosinality_stylegan2_32px.pt")


@pytest.mark.parametrize("bad", [123, "x" * 129, b"abc", ["a"]])
def test_sampling_refuses_a_bad_fingerprint_before_writing(generator, tmp_path, monkeypatch, bad):
    monkeypatch.setattr(generator, "fingerprint", lambda: bad)
    out = tmp_path / "ann"
    with pytest.raises(
        ValueError, match=r"the generator's fingerprint\(\) must be None or a string of at most 128"
    ):
        sample_annotation_folder(generator, 1, out, seeds=[1], class_names=["a", "b"])
    assert not (out / "manifest.json").exists()


def test_annotations_bound_the_fingerprint_like_interpreter_files():
    masks = np.zeros((1, 8, 8), dtype=np.uint8)
    ok = Annotations.from_arrays(
        masks=masks, class_names=["a", "b"], seeds=[1], generator_fingerprint="f" * 128
    )
    assert ok.generator_fingerprint == "f" * 128
    for bad in ("f" * 129, 7):
        with pytest.raises(ValueError, match="generator_fingerprint must be None or a string"):
            Annotations.from_arrays(
                masks=masks, class_names=["a", "b"], seeds=[1], generator_fingerprint=bad
            )


def test_one_bound_for_both_formats(generator):
    assert MAX_FINGERPRINT_CHARS == 128
    assert check_fingerprint(None) is None and check_fingerprint("abc") == "abc"
    layout = feature_layout(generator)
    with pytest.raises(ValueError, match="fingerprint must be None or a string of at most 128"):
        Interpreter(layout, 2, num_models=1, fingerprint="x" * 129)
