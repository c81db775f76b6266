"""Review fixes: one colour for two classes, clear palette errors in ``colorize``, bool
tensors that passed as ints, ``colorize``'s ``ignore_index``, ``holdout_protocol``'s
bool and -inf scores, and ``schema``'s NaN bounds and mixed unknown keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_library_checks import _preset

from dgan_data.annotations import Annotations
from dgan_data.conventions import (
    MAX_CLASSES,
    check_distinct_colours,
    check_finite_number,
    check_int,
    check_palette,
)
from dgan_data.metrics.confusion import metrics_from_confusion
from dgan_data.metrics.protocols import cross_validation_folds, holdout_protocol
from dgan_data.palette import colorize, make_palette
from dgan_data.presets import list_presets
from dgan_data.presets.preset import get_preset
from dgan_data.schema import Float, Int, SchemaError, check_document

SHARED = [[0, 0, 0], [200, 0, 0], [200, 0, 0]]
PAL = [[0, 0, 0], [10, 20, 30], [40, 50, 60]]
CONF = np.array([[5, 1, 0], [1, 5, 0], [0, 0, 7]])


# ------------------------------------------------------------- 1. shared colours
def test_shipped_palettes_and_make_palette_give_each_class_its_own_colour():
    """The rule below must not refuse a palette the package ships or generates."""
    for name in list_presets():
        palette = get_preset(name).palette
        assert check_palette(palette, len(palette)) == [list(c) for c in palette]
    for seed in (0, 1):
        palette = make_palette(MAX_CLASSES, seed=seed)
        assert len({tuple(c) for c in palette.tolist()}) == MAX_CLASSES


def test_check_distinct_colours_names_the_colour_and_its_classes():
    with pytest.raises(ValueError, match=r"\(200, 0, 0\) by classes 1, 2") as err:
        check_distinct_colours(SHARED)
    assert str(err.value).startswith("palette")


def test_a_display_palette_may_share_a_colour():
    """Labeler, legend and interpreter palettes only draw: a file saved with a shared
    colour (the DatasetGAN release's cat palette has one) keeps loading."""
    assert check_palette(SHARED, 3) == SHARED


def test_annotations_with_one_colour_for_two_classes_are_refused_before_saving():
    """The folder was saved, and `import-masks --format palette` refused it later."""
    masks = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"\(200, 0, 0\) by classes 1, 2"):
        Annotations.from_arrays(
            masks=masks, class_names=["bg", "hair", "skin"], seeds=[0], palette=SHARED
        )


def test_a_preset_with_one_colour_for_two_classes_names_both_classes():
    with pytest.raises(ValueError, match=r"\(200, 0, 0\) by classes 1 \(thing\), 2 \(other\)"):
        _preset(palette=SHARED)


# ------------------------------------------------------ 2. colorize's palette values
@pytest.mark.parametrize("value", [None, "x"], ids=["none", "string"])
def test_colorize_names_a_palette_value_that_is_no_number(value):
    """None and strings failed inside numpy (TypeError, UFuncTypeError)."""
    with pytest.raises(ValueError, match=r"palette values must be integers in 0\.\.255") as err:
        colorize(np.array([[0, 1]]), [[0, 0, 0], [1, 2, value]])
    assert repr(value) in str(err.value)


# ------------------------------------------------------- 3. bool tensors as ints
def test_check_int_refuses_a_bool_tensor_and_keeps_integer_tensors():
    with pytest.raises(ValueError, match=r"n must be an int, got tensor\(True\)"):
        check_int(torch.tensor(True), "n")
    assert check_int(torch.tensor(3), "n") == check_int(np.int64(3), "n") == 3


def test_check_finite_number_refuses_a_bool_tensor():
    with pytest.raises(ValueError, match=r"x must be a number, got tensor\(True\)"):
        check_finite_number(torch.tensor(True), "x")


def test_check_palette_refuses_a_bool_tensor():
    with pytest.raises(ValueError, match=r"palette\[0\] must be 3 ints"):
        check_palette(torch.tensor([[True, False, True]]), 1)
    assert check_palette(torch.tensor([[1, 0, 1]]), 1) == [[1, 0, 1]]


def test_exclude_refuses_a_bool_tensor_as_a_class_id():
    with pytest.raises(ValueError, match=r"exclude: class ids must be ints, got tensor\(True\)"):
        metrics_from_confusion(CONF, exclude=[torch.tensor(True)])


def test_cross_validation_folds_refuses_a_bool_tensor_seed():
    with pytest.raises(ValueError, match=r"seed .*tensor\(True\)"):
        cross_validation_folds(10, 2, seed=torch.tensor(True))


# ------------------------------------------------------ 4. colorize's ignore_index
@pytest.mark.parametrize("ignore_index", [True, 1.0, 1.5, "1"])
def test_colorize_refuses_an_ignore_index_that_is_no_int(ignore_index):
    """True and 1.0 painted class 1 as ignored; 1.5 matched nothing in silence."""
    for mask in (np.array([[0, 1, 2]]), torch.tensor([[0, 1, 2]])):
        with pytest.raises(ValueError, match="ignore_index must be None or an int") as err:
            colorize(mask, PAL, ignore_index=ignore_index)
        assert repr(ignore_index) in str(err.value)


def test_colorize_takes_numpy_and_tensor_ints_as_ignore_index():
    plain = colorize(np.array([[0, 1, 2]]), PAL, ignore_index=1)
    for index in (np.int64(1), torch.tensor(1)):
        assert np.array_equal(colorize(np.array([[0, 1, 2]]), PAL, ignore_index=index), plain)


# ------------------------------------------------------------ 5. holdout_protocol
@pytest.mark.parametrize("score", [True, np.bool_(True), torch.tensor(True)])
def test_holdout_refuses_a_bool_score_naming_the_checkpoint(score):
    """True was a score of 1.0, chosen over every mIoU."""
    with pytest.raises(ValueError, match="validation score of checkpoint 'a'"):
        holdout_protocol({"a": score, "b": 0.9}, {"a": CONF, "b": CONF})


@pytest.mark.parametrize("worst", [-math.inf, math.nan])
def test_holdout_without_a_defined_score_says_nan_or_minus_inf(worst):
    """All -inf was called "(all NaN)"."""
    with pytest.raises(ValueError, match=r"NaN or -inf") as err:
        holdout_protocol({"a": -math.inf, "b": worst}, {"a": CONF, "b": CONF})
    assert "'a'" in str(err.value) and "'b'" in str(err.value)


# ------------------------------------------------------------------- 6. schema
def test_a_bounded_float_refuses_nan_even_when_not_finite():
    with pytest.raises(SchemaError, match=r"field 'x' must be a number in \[0, 1\], got nan"):
        Float(0, 1, finite=False)(math.nan, "x")
    assert math.isnan(Float(finite=False)(math.nan, "x"))  # no bound: NaN is allowed
    assert Float(0, None, finite=False)(math.inf, "x") == math.inf


def test_unknown_keys_of_mixed_types_are_named_not_a_type_error():
    with pytest.raises(SchemaError, match="unknown field") as err:
        check_document({"a": 1, 2: 3, (1,): 4}, {"a": Int()}, "doc", allow_unknown=False)
    assert "2" in str(err.value) and "(1,)" in str(err.value)
