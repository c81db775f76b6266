"""Metrics and interpreter-fit review fixes: a float16 store that would overflow is a clear
error naming store_dtype; batch_size 1 is refused; seeds, counts, fold indices and
exclude ids are never truncated; uint64 counts do not wrap; the per-class std follows
ddof; a callable of inconsistent K, masks of different sizes and a raw holdout score are
handled with clear messages."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_interpreter_review import CountingSource

from dgan_data import Interpreter
from dgan_data.metrics import (
    cross_validation_folds,
    five_fold_protocol,
    format_iou_table,
    holdout_protocol,
    metrics_from_confusion,
)

LAYOUT = [(3, 4, 4), (2, 8, 8)]
SMALL = dict(num_models=2, hidden=(4, 3), max_steps=3, min_steps=1, eval_every=1, progress=False)


def features(n: int = 2, scale: float = 1.0) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [[torch.randn(c, h, w, generator=g) * scale for c, h, w in LAYOUT] for _ in range(n)]


def masks(n: int = 2, num_classes: int = 3) -> torch.Tensor:
    return torch.randint(0, num_classes, (n, 8, 8), generator=torch.Generator().manual_seed(1))


def per_image(n: int = 10, k: int = 2, seed: int = 0) -> np.ndarray:
    """(n, k, k) random per-image confusion matrices."""
    return np.random.default_rng(seed).integers(0, 20, (n, k, k))


# ------------------------------------------------ F1: float16 store overflow
def test_fp16_store_overflow_is_refused_naming_store_dtype():
    feats = features(scale=1e5)  # finite in float32, far beyond float16's 65504
    with pytest.raises(ValueError) as err:
        Interpreter.fit_features(feats, masks(), 3, **SMALL)
    msg = str(err.value)
    assert "store_dtype=torch.float16" in msg and "torch.bfloat16" in msg
    assert "torch.float32" in msg and "learning rate" not in msg


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_wide_store_dtypes_take_the_same_features(dtype):
    model = Interpreter.fit_features(features(scale=1e5), masks(), 3, store_dtype=dtype, **SMALL)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_non_finite_features_keep_their_own_message():
    feats = features()
    feats[1][0][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"image 1's feature maps \[0\] hold NaN or inf"):
        Interpreter.fit_features(feats, masks(), 3, **SMALL)


class LoudGenerator:
    """A generator whose finite feature maps exceed float16's range."""

    resolution = (8, 8)
    feature_channels = tuple(c for c, _, _ in LAYOUT)
    feature_resolutions = tuple((h, w) for _, h, w in LAYOUT)

    def synthesize(self, w, noise="const"):
        g = torch.Generator().manual_seed(0)
        feats = [torch.randn(1, c, h, w_, generator=g) * 1e5 for c, h, w_ in LAYOUT]
        return torch.zeros(1, 3, 8, 8), feats


def test_interpreter_fit_names_store_dtype_not_the_generator():
    ann = SimpleNamespace(w=torch.randn(2, 1, 4), masks=masks(), class_names=["a", "b", "c"])
    with pytest.raises(ValueError) as err:
        Interpreter.fit(LoudGenerator(), ann, **SMALL)
    msg = str(err.value)
    assert "store_dtype=torch.float16" in msg and "generator weights" not in msg


# ------------------------------------------------ F2: batch_size >= 2
@pytest.mark.parametrize("batch_size", [1, np.int64(1)])
def test_batch_size_one_is_refused_with_the_batchnorm_reason(batch_size):
    source = CountingSource()
    with pytest.raises(
        ValueError,
        match=r"batch_size must be an int in \[2, 65536\], got .*1.* \(pixels per model.*BatchNorm",
    ):
        Interpreter.fit_features(source, masks(), 3, batch_size=batch_size, **SMALL)
    assert source.calls == 0


def test_batch_size_two_still_trains():
    model = Interpreter.fit_features(features(), masks(), 3, batch_size=2, **SMALL)
    assert model.training_info["batch_size"] == 2


# ------------------------------------------------ F3: seeds and counts
@pytest.mark.parametrize("seed", [1.5, 2**64, -1, True, "3"])
def test_fold_seeds_outside_the_seed_range_are_refused(seed):
    with pytest.raises(ValueError, match="seed must be"):
        cross_validation_folds(20, 5, seed)
    with pytest.raises(ValueError, match="seed must be"):
        five_fold_protocol({"a": per_image(20)}, seed=seed)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(num_items=10.9), "num_items must be an int >= 1, got 10.9"),
        (dict(num_folds=2.5), "num_folds must be an int >= 2, got 2.5"),
        (dict(num_items=True), "num_items must be an int >= 1"),
    ],
)
def test_fold_counts_are_not_truncated(kw, words):
    with pytest.raises(ValueError) as err:
        cross_validation_folds(**{"num_items": 10, "num_folds": 2, **kw})
    assert words in str(err.value)


def test_five_fold_protocol_checks_num_items_and_ddof():
    with pytest.raises(ValueError, match=r"num_items must be an int >= 1, got 10\.5"):
        five_fold_protocol({"a": per_image(10)}, num_items=10.5)
    with pytest.raises(ValueError, match="ddof must be an int >= 0"):
        five_fold_protocol({"a": per_image(10)}, ddof=0.5)
    with pytest.raises(ValueError, match=r"ddof must be below the number of folds \(5\)"):
        five_fold_protocol({"a": per_image(10)}, ddof=5)


def test_numpy_int_seeds_and_counts_still_work():
    a = cross_validation_folds(np.int64(20), np.int64(5), np.int64(3))
    b = cross_validation_folds(20, 5, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------ F4: 255 with more than 255 classes
def test_mask_value_255_is_refused_when_it_is_also_a_class_id():
    m = masks(num_classes=3)
    m[0, :4] = 255
    source = CountingSource()
    with pytest.raises(ValueError, match=r"masks hold 32 pixels of value 255.*num_classes=300"):
        Interpreter.fit_features(source, m, 300, **SMALL)
    assert source.calls == 0


def test_missing_classes_warning_is_short(caplog):
    with caplog.at_level(logging.WARNING, logger="dgan_data.interpreter.fit"):
        Interpreter.fit_features(features(), masks(), 300, **SMALL)
    text = " ".join(r.getMessage() for r in caplog.records if "without any" in r.getMessage())
    assert "(297 in all)" in text and len(text) < 200


# ------------------------------------------------ F5: fold indices and exclude ids
def test_float_fold_indices_are_refused():
    with pytest.raises(ValueError, match=r"fold 0: image indices must be ints, got 0.9, 1.7"):
        five_fold_protocol({"a": per_image(4)}, folds=[[0.9, 1.7], [2.2, 3.9]])


def test_bool_fold_mask_is_refused_with_a_hint():
    mask = np.array([True, True, False, False])
    with pytest.raises(ValueError, match=r"fold 0 is a bool mask.*np\.flatnonzero"):
        five_fold_protocol({"a": per_image(4)}, folds=[mask, ~mask])


def test_integer_folds_of_any_kind_still_work():
    folds = [torch.tensor([0, 1]), np.array([2, 3], dtype=np.uint8)]
    r = five_fold_protocol({"a": per_image(4)}, folds=folds)
    assert [f.tolist() for f in r.folds] == [[0, 1], [2, 3]]


@pytest.mark.parametrize("exclude", [[1.7], [True], ["1"]])
def test_exclude_ids_are_not_truncated(exclude):
    with pytest.raises(ValueError, match="exclude: class ids must be ints"):
        metrics_from_confusion([[2, 1], [1, 2]], exclude=exclude)
    with pytest.raises(ValueError, match="exclude: class ids must be ints"):
        five_fold_protocol({"a": per_image(10)}, exclude=exclude)


def test_integer_exclude_ids_still_work():
    r = metrics_from_confusion([[2, 1], [1, 2]], exclude=[np.int64(1)])
    assert r["exclude"] == (1,)


# ------------------------------------------------ F6: uint64 counts
def test_uint64_counts_beyond_int64_are_refused():
    conf = np.array([[2**63 + 5, 1], [1, 10]], dtype=np.uint64)
    with pytest.raises(ValueError, match="do not fit int64"):
        metrics_from_confusion(conf)
    assert metrics_from_confusion(np.array([[3, 1], [1, 3]], dtype=np.uint64))["miou"] == 0.6


# ------------------------------------------------ F7: per-class std follows ddof
@pytest.mark.parametrize("ddof", [0, 1])
def test_per_class_std_uses_the_protocols_ddof(ddof):
    r = five_fold_protocol({"a": per_image(10), "b": per_image(10, seed=1)}, ddof=ddof)
    assert r.ddof == ddof and r.as_dict()["ddof"] == ddof
    expected = np.std(r.per_class_iou, axis=0, ddof=ddof)
    lines = format_iou_table(r, ["bg", "fg"], digits=3).splitlines()
    for k in range(2):
        assert float(lines[1 + k].split()[-1]) == pytest.approx(expected[k] * 100, abs=1e-3)


# ------------------------------------------------ F8: callable sources of inconsistent K
def test_callable_with_inconsistent_class_count_names_checkpoint_and_fold():
    def source(idx):
        return np.eye(2 if idx[0] == 0 else 3, dtype=np.int64)

    with pytest.raises(ValueError, match=r"checkpoint 's', fold 1: \(3, 3\) matrix, expected"):
        five_fold_protocol({"s": source}, num_items=4, folds=[[0, 1], [2, 3]])


# ------------------------------------------------ F9: masks of different sizes
def test_masks_of_different_sizes_are_named():
    m = [np.zeros((8, 8), np.uint8), np.zeros((7, 8), np.uint8)]
    with pytest.raises(ValueError, match=r"masks: mask 1 is 7 x 8, mask 0 is 8 x 8"):
        Interpreter.fit_features(features(), m, 3, **SMALL)


# ------------------------------------------------ F10: a raw holdout score
def test_holdout_number_score_is_shown_as_given():
    test = {"a": np.array([[5, 0], [0, 5]])}
    text = format_iou_table(holdout_protocol({"a": -0.25}, test))
    assert "validation score -0.2500" in text.splitlines()[0]


def test_holdout_confusion_score_stays_a_percentage():
    val = {"a": np.array([[5, 0], [0, 5]])}
    r = holdout_protocol(val, val)
    assert r.val_is_miou
    assert "validation score 100.0" in format_iou_table(r).splitlines()[0]
