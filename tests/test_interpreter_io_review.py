"""Interpreter file review fixes: an oversized JSON header is refused before it is parsed
(a 16 MB ``extra`` list took 10 s and +280 MB to load); ``Interpreter.load`` and
``load_interpreter`` check ``device`` with the package's rule before reading the file;
``image_scores`` counts its top pixels exactly (0.29 of 100 pixels is 29, not 28)."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from test_interpreter_review import interpreter, rewrite

from dgan_data import Interpreter, fileio, load_interpreter
from dgan_data.interpreter import InterpreterFileError, read_interpreter_metadata
from dgan_data.uncertainty import image_scores

LIMIT = 2 * 2**20  # the documented bound, written out: the test does not read the module's


# --------------------------------------------- 1. the header's size is bounded
@pytest.fixture
def oversized(tmp_path, monkeypatch):
    """A valid interpreter file whose metadata is just over the bound (a long string in
    the free-form ``extra``: cheap to parse, so the unfixed reader loads it quickly)."""
    good = interpreter().save(tmp_path / "good.safetensors")
    path = rewrite(good, tmp_path / "big.safetensors", lambda m: m.update(extra="x" * LIMIT))

    def never(*args, **kwargs):
        raise AssertionError("the oversized metadata was parsed")

    monkeypatch.setattr(fileio.json, "loads", never)  # where the metadata would be parsed
    return path


@pytest.mark.parametrize("reader", [Interpreter.load, read_interpreter_metadata])
def test_oversized_metadata_is_refused_before_parsing_naming_file_and_size(oversized, reader):
    with pytest.raises(InterpreterFileError) as info:
        reader(oversized)
    message = str(info.value)
    assert str(oversized) in message
    assert f"characters, more than the {LIMIT}" in message


def test_the_refusal_states_the_metadatas_own_length(tmp_path):
    good = interpreter().save(tmp_path / "good.safetensors")
    path = rewrite(good, tmp_path / "big.safetensors", lambda m: m.update(extra="x" * LIMIT))
    with safe_open(str(path), framework="pt") as f:
        length = len(f.metadata()["interpreter"])
    assert length > LIMIT
    with pytest.raises(InterpreterFileError, match=f"{length} characters, more than the {LIMIT}"):
        Interpreter.load(path)


def test_save_refuses_metadata_its_reader_would_refuse_for_its_size(tmp_path):
    interp = interpreter()
    interp.training_info = {"log": "x" * LIMIT}
    target = tmp_path / "never.safetensors"
    with pytest.raises(ValueError, match="not writing interpreter file"):
        interp.save(target)
    assert not target.exists()


def test_a_header_with_the_most_classes_and_longest_names_still_loads(tmp_path):
    names = [f"{i:04d}" + "n" * 252 for i in range(4096)]  # 4096 names of 256 characters
    interp = Interpreter(
        [(3, 4, 4)], 4096, num_models=1, hidden=(2, 2), class_names=names,
        palette=[[255, 100 + i // 64, 100 + i % 64] for i in range(4096)],  # 3 digits each
    )  # fmt: skip
    loaded = Interpreter.load(interp.save(tmp_path / "many.safetensors"))
    assert loaded.class_names == names


# --------------------------------------------- 2. load checks its device first
@pytest.mark.parametrize(
    ("device", "shown"), [("cpux", "'cpux'"), (True, "'True'"), (3.5, "'3.5'")]
)
@pytest.mark.parametrize("loader", [Interpreter.load, load_interpreter])
def test_load_refuses_a_value_that_is_no_device(tmp_path, loader, device, shown):
    path = interpreter().save(tmp_path / "i.safetensors")
    with pytest.raises(ValueError, match=f"^device {shown} is not a device name"):
        loader(path, device=device)


def test_load_checks_the_device_before_reading_the_file(tmp_path):
    # the device is wrong and the file is missing: the device is named, as by load_generator
    with pytest.raises(ValueError, match=r"^device 'cpux' is not a device name"):
        Interpreter.load(tmp_path / "missing.safetensors", device="cpux")


def test_load_refuses_cuda_where_there_is_none(tmp_path, monkeypatch):
    path = interpreter().save(tmp_path / "i.safetensors")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^device 'cuda' asked for, but CUDA is not available"):
        Interpreter.load(path, device="cuda")


def test_load_still_moves_to_a_good_device(tmp_path):
    path = interpreter().save(tmp_path / "i.safetensors")
    assert Interpreter.load(path, device=torch.device("cpu")).device == torch.device("cpu")


# --------------------------------------------- 3. image_scores counts exactly
SCORES = torch.arange(100.0).view(1, 10, 10)


@pytest.mark.parametrize(
    # by hand: the top k of 0..99 are 100-k..99, whose mean is (100 - k + 99) / 2
    ("fraction", "expected"),
    [(0.29, (71 + 99) / 2), (0.57, (43 + 99) / 2), (0.1, (90 + 99) / 2)],
)
def test_image_scores_average_exactly_the_top_fraction(fraction, expected):
    assert image_scores(SCORES, fraction).item() == expected
    every = torch.ones(1, 10, 10, dtype=torch.bool)
    assert image_scores(SCORES, fraction, valid=every).item() == expected


def test_image_scores_count_each_images_valid_pixels_exactly():
    scores = SCORES.repeat(3, 1, 1)
    valid = torch.zeros(3, 10, 10, dtype=torch.bool)
    valid[0] = True  # 100 valid: 0.57 of them is 57 -> 43..99
    valid[1].view(-1)[:50] = True  # 0..49 valid: 0.57 * 50 = 28.5 -> 28 -> 22..49
    valid[2].view(-1)[1] = True  # 1 valid: floor(0.57) = 0 -> at least 1 -> the 1
    got = image_scores(scores, 0.57, valid=valid).tolist()
    assert got == [(43 + 99) / 2, (22 + 49) / 2, 1.0]


def test_image_scores_with_a_long_decimal_fraction_match_a_reference():
    # 1/3 written with 16 digits: its exact products overflow int64 for 10000 pixels
    scores = torch.randperm(10000, generator=torch.Generator().manual_seed(0)).float()
    scores = scores.view(1, 100, 100)
    for fraction in (1 / 3, 0.29):
        k = int(10000 * int(repr(fraction)[2:]) // 10 ** len(repr(fraction)[2:]))
        expected = (9999 + (10000 - k)) / 2  # the top k of a permutation of 0..9999
        valid = torch.ones_like(scores, dtype=torch.bool)
        assert image_scores(scores, fraction).item() == pytest.approx(expected, rel=1e-6)
        assert image_scores(scores, fraction, valid=valid).item() == pytest.approx(
            expected, rel=1e-6
        )
