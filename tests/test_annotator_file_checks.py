"""load_annotator checks a toy annotator's description and weights before building.

A missing field was a bare KeyError, a string where an int belongs int()'s message, an
unknown architecture smp's KeyError, weights of another shape torch's "size mismatch",
a damaged file a SafetensorError, and ``num_classes`` 10**9 or a decoder width of 100000
tried to allocate hundreds of GB. Each is now a ValueError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dgan_data.toy import NUM_CLASSES
from dgan_data.toy.annotator import build_annotator, load_annotator, save_annotator


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("annotator")
    model = build_annotator(NUM_CLASSES, decoder_channels=[16, 8, 8])
    path = save_annotator(model, folder / "a.safetensors", {})
    return path, json.loads(path.with_suffix(".json").read_text())


def _copy(saved, tmp_path: Path, meta: dict | None = None, weights: bytes | None = None) -> Path:
    path, good_meta = saved
    out = tmp_path / "b.safetensors"
    out.write_bytes(path.read_bytes() if weights is None else weights)
    out.with_suffix(".json").write_text(json.dumps(good_meta if meta is None else meta))
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_classes": None}, r"missing field\(s\) num_classes"),
        ({"num_classes": "x"}, r"num_classes must be an int in \[1, 14\], got 'x'"),
        ({"num_classes": 10**9}, r"num_classes must be an int in \[1, 14\], got 1000000000"),
        ({"encoder_depth": 99}, r"encoder_depth must be an int in \[1, 5\], got 99"),
        (
            {"decoder_channels": [100000, 8, 8]},
            r"decoder_channels entries must be an int in \[1, 1024\], got 100000",
        ),
        ({"decoder_channels": "abc"}, r"decoder_channels must be a list of ints, got 'abc'"),
        ({"decoder_channels": [8, 8]}, r"decoder_channels \[8, 8\] needs one entry per encoder"),
        ({"arch": 7}, r"arch must be a model name, got 7"),
        ({"arch": "nope"}, r"Wrong architecture type `nope`"),
    ],
)
def test_a_bad_description_is_named(saved, tmp_path, change, message):
    meta = {**saved[1], **change}
    meta = {k: v for k, v in meta.items() if v is not None}
    path = _copy(saved, tmp_path, meta=meta)
    with pytest.raises(ValueError, match=r"b\.json: " + message):
        load_annotator(path)


def test_weights_of_another_shape_are_named_with_the_key(saved, tmp_path):
    path = _copy(saved, tmp_path, meta={**saved[1], "num_classes": 5})
    with pytest.raises(ValueError) as err:
        load_annotator(path)
    text = str(err.value)
    assert text.startswith(f"{path} does not match the architecture in b.json")
    assert "net.segmentation_head.0.weight (14, 8, 3, 3) (expected (5, 8, 3, 3))" in text


@pytest.mark.parametrize("cut", [100, 8])
def test_damaged_weights_are_named(saved, tmp_path, cut):
    path = _copy(saved, tmp_path, weights=saved[0].read_bytes()[:cut])
    with pytest.raises(ValueError, match=r"b\.safetensors: not a readable \.?safetensors file"):
        load_annotator(path)


def test_a_good_pair_still_loads_exactly(saved, tmp_path):
    path = _copy(saved, tmp_path)
    model = load_annotator(path)
    original = build_annotator(NUM_CLASSES, decoder_channels=[16, 8, 8])
    from safetensors.torch import load_file

    state = load_file(str(saved[0]))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert set(model.state_dict()) == set(original.state_dict())


def test_building_holds_the_same_bounds_so_what_is_saved_loads():
    with pytest.raises(ValueError, match=r"decoder_channels entries must be an int in \[1, 1024\]"):
        build_annotator(NUM_CLASSES, decoder_channels=[2048, 8, 8])
    with pytest.raises(ValueError, match=r"encoder_depth must be an int in \[1, 5\], got 6"):
        build_annotator(NUM_CLASSES, encoder_depth=6, decoder_channels=[8] * 6)
    with pytest.raises(ValueError, match=r"num_classes must be an int in \[1, 14\], got 15"):
        build_annotator(15, decoder_channels=[16, 8, 8])
