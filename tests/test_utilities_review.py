"""Small modules (review): a huge JSON integer is a schema error, a heat map with only
vmax clips above it, colours are checked as colours, and a 3 px wide tensor image is
read as torch lays it out."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from test_cli_errors import one_line_error, run

from dgan_data import Annotations
from dgan_data.conventions import check_palette, to_uint8_image
from dgan_data.palette import colorize
from dgan_data.presets import resolve_preset_file
from dgan_data.schema import Float, Optional, SchemaError, check_document
from dgan_data.viz import heatmap

HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    "check", [Float(0, 1), Float(), Optional(Float(0, 1)), Float(finite=False)]
)
def test_a_huge_integer_is_a_schema_error(check):
    # float() of it raised OverflowError, which no caller catches
    with pytest.raises(SchemaError, match=r"f\.json: field 'x' must be .*integer of 1329 bits"):
        check_document(json.loads('{"x": ' + HUGE + "}"), {"x": check}, "f.json")


def test_an_annotation_manifest_with_a_huge_psi_is_named(capsys, tmp_path):
    source = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
    folder = tmp_path / "ann"
    shutil.copytree(source, folder)
    manifest = folder / "manifest.json"
    text = manifest.read_text()
    assert text.count('"psi": 0.8') == 1
    manifest.write_text(text.replace('"psi": 0.8', '"psi": ' + HUGE))
    with pytest.raises(ValueError, match="integer of 1329 bits"):
        Annotations.load(folder)
    code, _, err = run(capsys, "inspect", str(folder))
    assert code == 2  # was a 47-line OverflowError traceback, exit 1
    one_line_error(err, "manifest.json", "psi")


def test_a_heat_map_with_only_vmax_clips_values_above_it():
    top, bottom = [253, 231, 37], [68, 1, 84]
    # the data minimum 5 above vmax made the range empty: 5 and 6 were drawn darkest
    assert heatmap(np.array([[5.0, 6.0]]), vmax=1.0).tolist() == [[top, top]]
    assert heatmap(np.array([[5.0, 6.0]]), vmin=0.0, vmax=1.0).tolist() == [[top, top]]
    assert heatmap(np.array([[-5.0, -6.0]]), vmin=0.0).tolist() == [[bottom, bottom]]
    assert heatmap(np.array([[3.0, 3.0]])).tolist() == [[bottom, bottom]]  # constant: dark


@pytest.mark.parametrize("ignore_color", [(12.7, 0.9, 255.5), (True, False, True), (1, 2)])
def test_colorize_refuses_an_ignore_colour_that_is_no_colour(ignore_color):
    with pytest.raises(ValueError, match=r"ignore_color must be 3 ints in 0\.\.255"):
        colorize(np.array([[0, 255]]), [[1, 2, 3]], ignore_color=ignore_color)
    out = colorize(np.array([[0, 255]]), [[1, 2, 3]], ignore_color=torch.tensor([4, 5, 6]))
    assert out.tolist() == [[[1, 2, 3], [4, 5, 6]]]


def test_colorize_refuses_bools_in_a_listed_palette():
    with pytest.raises(ValueError, match="palette values must be integers"):
        colorize(np.array([[0, 1]]), [[True, False, True], [0, 0, 1]])


@pytest.mark.parametrize(
    "palette", [{(255, 0, 0), (0, 255, 0), (0, 0, 255)}, [{3, 2, 1}] * 3, [b"\xff\x00\x00"] * 3]
)
def test_check_palette_refuses_unordered_colours(palette):
    # a set gave the classes its colours in hash order (class 0 green, not red)
    with pytest.raises(ValueError, match="colours in a list"):
        check_palette(palette, 3)
    assert check_palette([(255, 0, 0), (0, 255, 0), (0, 0, 255)], 3)[0] == [255, 0, 0]


def test_a_three_pixel_wide_tensor_image_is_read_channels_first():
    image = torch.zeros(3, 5, 3)
    image[0] = 1.0  # red, as the stream lays images out
    assert (to_uint8_image(image) == [255, 0, 0]).all()
    array = np.zeros((5, 3, 3), np.float32)
    array[..., 0] = 1.0  # numpy arrays stay (H, W, 3)
    assert to_uint8_image(array).shape == (5, 3, 3) and (to_uint8_image(array) == [255, 0, 0]).all()
