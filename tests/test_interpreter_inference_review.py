"""Interpreter inference review: weights made under ``torch.inference_mode``, first-layer
weights updated in place (no stale plan caches), weights cast from float32, checks of
``chunk_bytes``, and the containers ``output_size`` and ``crop`` accept.

Every prediction is compared with ``naive_predict`` (upsample, concatenate, plain
``nn.Sequential`` models), the independent reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_interpreter import _random_features, _random_interpreter
from test_stream import random_interpreter, tiny_generator

from dgan_data import Labeler
from dgan_data.interpreter import Interpreter

LAYOUT = [(6, 4, 4), (5, 8, 8), (4, 16, 16)]
# Two 16 px maps apart in channel order: their first-layer rows are not one block.
SPLIT_LAYOUT = [(6, 16, 16), (5, 4, 4), (4, 16, 16)]
IMPLS = ("rows", "interpolate")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _assert_matches_naive(pred, ref) -> None:
    assert torch.equal(pred.labels, ref.labels)
    torch.testing.assert_close(pred.probs, ref.probs, atol=1e-5, rtol=0)
    torch.testing.assert_close(pred.pixel_uncertainty, ref.pixel_uncertainty, atol=1e-5, rtol=0)


def _loaded_in_inference_mode(interp: Interpreter, tmp_path) -> Interpreter:
    path = interp.save(tmp_path / "interp.safetensors")
    with torch.inference_mode():
        loaded = Interpreter.load(path)
    assert loaded.w1.is_inference()
    return loaded


# ------------------------------------------------------------ 1. inference-mode weights
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("inside", [False, True])
def test_interpreter_loaded_under_inference_mode_predicts(tmp_path, impl, inside):
    interp = _random_interpreter(LAYOUT, label_size=(16, 16))
    maps = _random_features(LAYOUT)
    ref = interp.naive_predict(maps, return_probs=True)
    loaded = _loaded_in_inference_mode(interp, tmp_path)
    for _ in range(2):  # the second call reads the cached plan
        if inside:
            with torch.inference_mode():
                pred = loaded.predict(maps, impl=impl, return_probs=True)
        else:
            pred = loaded.predict(maps, impl=impl, return_probs=True)
        _assert_matches_naive(pred, ref)


def test_labeler_with_an_inference_mode_interpreter(tmp_path):
    G = tiny_generator()
    interp = random_interpreter(G)
    loaded = _loaded_in_inference_mode(interp, tmp_path)
    labeler = Labeler(G, loaded)
    with torch.inference_mode():
        batch = labeler.label([3, 4])
        images, feats = labeler.synthesize([3, 4])
    ref = interp.naive_predict(interp.prediction_maps(feats, images))
    assert torch.equal(batch.masks.cpu(), ref.labels)


# ------------------------------------------------------------ 2. stale plan caches
@pytest.mark.parametrize("layout", [LAYOUT, SPLIT_LAYOUT], ids=["blocks", "split"])
def test_predict_follows_first_layer_updated_through_data(layout):
    torch.manual_seed(0)
    interp = _random_interpreter(layout, label_size=(16, 16))
    maps = _random_features(layout)
    for impl in IMPLS:
        interp.predict(maps, impl=impl)  # fills the plan caches
    # An EMA or copy idiom through .data keeps the storage and the version counter.
    interp.w1.data.copy_(torch.randn_like(interp.w1) / 4)
    ref = interp.naive_predict(maps, return_probs=True)
    for impl in IMPLS:
        _assert_matches_naive(interp.predict(maps, impl=impl, return_probs=True), ref)


def test_first_layer_follows_w1_updated_through_data():
    interp = _random_interpreter(SPLIT_LAYOUT, label_size=(16, 16))
    maps = _random_features(SPLIT_LAYOUT)
    interp.first_layer(maps)
    interp.w1.data.mul_(-2.0)
    ref = interp.to_modules()[1][0]  # model 1's first Linear, an independent copy
    x = torch.cat(
        [
            torch.nn.functional.interpolate(f, size=(16, 16), mode="bilinear", align_corners=False)
            for f in maps
        ],
        dim=1,
    )
    want = ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, H1, H, W)
    torch.testing.assert_close(interp.first_layer(maps)[:, 1], want, atol=1e-5, rtol=0)


def test_interpolate_under_autocast_follows_w1_updated_through_data():
    torch.manual_seed(0)
    interp = _random_interpreter(LAYOUT, label_size=(16, 16))
    maps = _random_features(LAYOUT)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        interp.predict(maps, impl="interpolate")  # caches a bfloat16 plan
    interp.w1.data.copy_(torch.randn_like(interp.w1) / 4)
    ref = interp.naive_predict(maps, return_probs=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = interp.predict(maps, impl="interpolate", return_probs=True)
    # bfloat16 products move probabilities by ~1e-3; stale weights by ~0.05 on average.
    assert (pred.probs - ref.probs).abs().mean() < 0.01


# ------------------------------------------------------------ 3. weights not float32
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("impl", IMPLS)
def test_predict_refuses_weights_cast_from_float32(dtype, impl):
    interp = _random_interpreter(LAYOUT, label_size=(16, 16)).to(dtype)
    maps = _random_features(LAYOUT)
    assert interp.naive_predict(maps).labels.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="float32") as info:
        interp.predict(maps, impl=impl)
    assert "autocast" in str(info.value)
    interp.float()  # the remedy the message names
    _assert_matches_naive(
        interp.predict(maps, impl=impl, return_probs=True),
        interp.naive_predict(maps, return_probs=True),
    )


# ------------------------------------------------------------ 4. chunk_bytes
@pytest.mark.parametrize(
    "value", [0, -5, True, False, 1.5, "big", float("inf"), float("nan"), 2.0**30]
)
@pytest.mark.parametrize("impl", IMPLS)
def test_predict_refuses_bad_chunk_bytes(value, impl):
    interp = _random_interpreter(LAYOUT, label_size=(16, 16))
    maps = _random_features(LAYOUT)
    with pytest.raises(ValueError, match="chunk_bytes"):
        interp.predict(maps, impl=impl, chunk_bytes=value)


def test_bad_chunk_bytes_attribute_is_refused():
    interp = _random_interpreter(LAYOUT, label_size=(16, 16))
    interp.chunk_bytes = 0  # silently fell back to the default before
    with pytest.raises(ValueError, match="chunk_bytes"):
        interp.predict(_random_features(LAYOUT), impl="rows")


@pytest.mark.parametrize("value", [None, 1, 4096, np.int64(1 << 20)])
@pytest.mark.parametrize("impl", IMPLS)
def test_good_chunk_bytes_match_naive(value, impl):
    interp = _random_interpreter(LAYOUT, label_size=(16, 16))
    maps = _random_features(LAYOUT)
    ref = interp.naive_predict(maps, return_probs=True)
    pred = interp.predict(maps, impl=impl, chunk_bytes=value, return_probs=True)
    _assert_matches_naive(pred, ref)


# ------------------------------------------------------------ output_size and crop alike
@pytest.mark.parametrize("kind", [torch.tensor, np.array])
def test_output_size_takes_what_crop_takes(kind):
    interp = _random_interpreter(LAYOUT, label_size=(16, 16))
    maps = _random_features(LAYOUT)
    ref = interp.naive_predict(maps, output_size=(12, 10), crop=(1, 2, 8, 6), return_probs=True)
    pred = interp.predict(
        maps, output_size=kind([12, 10]), crop=kind([1, 2, 8, 6]), return_probs=True
    )
    _assert_matches_naive(pred, ref)
    for bad in ({12, 10}, kind(12)):
        with pytest.raises(ValueError, match="output_size"):
            interp.predict(maps, output_size=bad)
    with pytest.raises(ValueError, match="crop"):
        interp.predict(maps, output_size=(12, 10), crop={1, 2, 8, 6})
