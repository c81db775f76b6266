"""Preview grids of images 3 px wide, empty images, NaN and bfloat16 images: each sample
is drawn as given (never transposed), and bad input is a ValueError naming it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dgan_data import Annotations, preview_annotations
from dgan_data.viz import GRID_MIN_TILE, GRID_PAD, heatmap, make_palette, overlay, preview_grid

K = 3


def _tile(grid: np.ndarray, row: int, col: int, h: int, w: int) -> np.ndarray:
    y, x = GRID_PAD + row * (h + GRID_PAD), GRID_PAD + col * (w + GRID_PAD)
    return grid[y : y + h, x : x + w]


def _expected_overlay(image_hwc: np.ndarray, mask: np.ndarray, alpha: float = 0.5):
    colours = make_palette(K)[mask].astype(np.float64)
    return np.rint((1 - alpha) * image_hwc.astype(np.float64) + alpha * colours).astype(np.uint8)


@pytest.mark.parametrize("h", [3, 5])
def test_numpy_images_three_px_wide_are_drawn_as_given(tmp_path, h):
    """A numpy (3, H, 3) sample was read as (H, W, 3): transposed in silence for H = 3,
    refused as not matching its own mask otherwise."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 3, h, 3)).astype(np.uint8)
    masks = rng.integers(0, K, (2, h, 3))
    path = preview_grid(
        images, masks, None, ["a", "b", "c"], make_palette(K), tmp_path / "g.png", scale=1
    )
    grid = np.asarray(Image.open(path).convert("RGB"))
    for b in range(2):
        expected = images[b].transpose(1, 2, 0)
        np.testing.assert_array_equal(_tile(grid, 0, b, h, 3), expected)
        np.testing.assert_array_equal(
            _tile(grid, 1, b, h, 3), _expected_overlay(expected, masks[b])
        )


def test_an_annotation_folder_three_px_wide_is_drawn_image_above_its_mask(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 5, 3), generator=g, dtype=torch.uint8)
    masks = torch.randint(0, K, (2, 5, 3), generator=g)
    ann = Annotations(masks=masks, class_names=["a", "b", "c"], seeds=[0, 1], images=images)
    path, ids = preview_annotations(ann, tmp_path / "check.png")
    assert ids == ann.ids
    grid = np.asarray(Image.open(path).convert("RGB"))
    scale = math.ceil(GRID_MIN_TILE / 5)  # tiles enlarged to at least GRID_MIN_TILE px
    for b in range(2):
        tile = _tile(grid, 0, b, 5 * scale, 3 * scale)[::scale, ::scale]
        np.testing.assert_array_equal(tile, images[b].permute(1, 2, 0).numpy())


@pytest.mark.parametrize("size", [(0, 4), (4, 0)])
def test_empty_images_are_refused(tmp_path, size):
    """H = 0 was a ZeroDivisionError; W = 0 wrote a grid of empty tiles."""
    images = np.zeros((1, 3, *size))
    masks = np.zeros((1, *size), np.int64)
    with pytest.raises(ValueError, match="1x1"):
        preview_grid(images, masks, None, ["a"], make_palette(1), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_a_nan_image_is_refused_not_drawn_in_an_arbitrary_colour(tmp_path):
    image = torch.rand(3, 4, 4)
    image[0, 1, 1] = float("nan")
    mask = torch.zeros(4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="NaN"):
        overlay(image, mask, make_palette(K))
    with pytest.raises(ValueError, match="NaN"):
        preview_grid(image[None], mask[None], None, ["a"], make_palette(1), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_bfloat16_tensors_are_drawn_as_their_float32_values(tmp_path):
    """numpy has no bfloat16: ``.numpy()`` raised a TypeError naming a ScalarType."""
    image = torch.rand(3, 4, 6).bfloat16()
    mask = torch.randint(0, K, (4, 6))
    values = torch.rand(4, 6).bfloat16()
    np.testing.assert_array_equal(
        overlay(image, mask, make_palette(K)), overlay(image.float(), mask, make_palette(K))
    )
    np.testing.assert_array_equal(heatmap(values), heatmap(values.float()))
    names, pal = ["a", "b", "c"], make_palette(K)
    a = preview_grid(image[None], mask[None], values[None], names, pal, tmp_path / "a.png")
    b = preview_grid(
        image[None].float(), mask[None], values[None].float(), names, pal, tmp_path / "b.png"
    )
    np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
