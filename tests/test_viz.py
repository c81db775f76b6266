"""Overlays, heat maps, legends, preview grids and the ``dgan-data preview`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dgan_data import load_generator
from dgan_data.cli import main
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.preview import preview
from dgan_data.viz import (
    GRID_MIN_TILE,
    GRID_PAD,
    colorize,
    grid_layout,
    heatmap,
    legend,
    make_palette,
    overlay,
    preview_grid,
    to_uint8_image,
    uncertainty_key,
)

K = 4


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models(tmp_path_factory, reference_dir) -> dict[str, str]:
    d = tmp_path_factory.mktemp("models")
    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = Interpreter(feature_layout(G), K, num_models=3, label_size=(32, 32), seed=0)
    return {
        "generator": str(G.save(d / "g.safetensors")),
        "interpreter": str(interp.save(d / "i.safetensors")),
    }


def _sample(h: int = 6, w: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.random((3, h, w))).float()
    mask = torch.from_numpy(rng.integers(0, K, (h, w)))
    return image, mask


# ---------------------------------------------------------------------- overlay
def test_overlay_blends_palette_colours_exactly():
    image, mask = _sample()
    mask[0, 0] = 255
    pal = make_palette(K)
    out = overlay(image, mask, pal, alpha=0.3)
    assert out.shape == (6, 5, 3) and out.dtype == np.uint8
    img8 = np.rint(image.permute(1, 2, 0).numpy().astype(np.float64) * 255)
    for y, x in [(1, 1), (2, 3), (5, 4)]:
        c = int(mask[y, x])
        want = np.rint(0.7 * img8[y, x] + 0.3 * pal[c].astype(np.float64))
        np.testing.assert_array_equal(out[y, x], want.astype(np.uint8))
    np.testing.assert_array_equal(out[0, 0], img8[0, 0].astype(np.uint8))  # ignored: image


def test_overlay_alpha_extremes_and_errors():
    image, mask = _sample()
    pal = make_palette(K)
    np.testing.assert_array_equal(overlay(image, mask, pal, alpha=0.0), to_uint8_image(image))
    np.testing.assert_array_equal(overlay(image, mask, pal, alpha=1.0), colorize(mask, pal))
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, mask, pal, alpha=1.5)
    with pytest.raises(ValueError, match="mask shape"):
        overlay(image, mask[:3], pal)


def test_to_uint8_image_accepts_chw_float_and_hwc_uint8():
    image, _ = _sample()
    u8 = to_uint8_image(image)
    assert u8.shape == (6, 5, 3) and u8.dtype == np.uint8
    np.testing.assert_array_equal(to_uint8_image(u8), u8)
    with pytest.raises(ValueError, match="image must be"):
        to_uint8_image(np.zeros((2, 6, 5)))


# ---------------------------------------------------------------------- heatmap
def test_heatmap_colour_map_ends_and_nan():
    values = np.array([[0.0, 0.5], [1.0, np.nan]])
    out = heatmap(values)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [68, 1, 84])  # viridis low end
    np.testing.assert_array_equal(out[1, 0], [253, 231, 37])  # high end
    np.testing.assert_array_equal(out[0, 1], [33, 144, 141])  # middle anchor
    np.testing.assert_array_equal(out[1, 1], [128, 128, 128])  # NaN
    const = heatmap(np.full((3, 3), 2.0))
    assert (const == np.array([68, 1, 84], dtype=np.uint8)).all()
    clipped = heatmap(np.array([[0.0, 10.0]]), vmin=0.0, vmax=1.0)
    np.testing.assert_array_equal(clipped[0, 1], [253, 231, 37])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        heatmap(np.zeros((2, 2, 2)))


def test_heatmap_spans_the_whole_float64_range_without_overflow():
    # max - min of -1e308..1e308 overflows to inf; the ends must still get the end colours
    with np.errstate(all="raise"):
        out = heatmap(np.array([[-1e308, 0.0, 1e308, np.inf]]))
    np.testing.assert_array_equal(out[0, 0], [68, 1, 84])
    np.testing.assert_array_equal(out[0, 1], [33, 144, 141])
    np.testing.assert_array_equal(out[0, 2], [253, 231, 37])
    np.testing.assert_array_equal(out[0, 3], [128, 128, 128])  # inf is not a value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vmin": float("nan")}, "vmin must be finite"),
        ({"vmax": float("inf")}, "vmax must be finite"),
        ({"vmin": "0"}, "vmin must be a number"),
        ({"vmin": 1.0, "vmax": 0.0}, r"vmin \(1\) must not exceed vmax \(0\)"),
    ],
)
def test_heatmap_refuses_bounds_that_are_not_a_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        heatmap(np.zeros((2, 2)), **kwargs)


def test_preview_grid_draws_slightly_negative_uncertainty(tmp_path):
    # rounding can leave a JS map a hair below 0: the scale starts at 0, not an error
    imgs = np.zeros((1, 3, 4, 4), np.float32)
    masks = np.zeros((1, 4, 4), np.int64)
    us = np.full((1, 4, 4), -1e-9)
    path = preview_grid(
        imgs, masks, us, ["background", "hair"], make_palette(2), tmp_path / "g.png", scale=1
    )
    assert np.asarray(Image.open(path)).ndim == 3


def test_heatmap_is_monotone_in_brightness():
    ramp = heatmap(np.linspace(0, 1, 50)[None, :])[0].astype(float)
    luma = ramp @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(luma) > -1.0).all() and luma[-1] > luma[0] + 100


# ----------------------------------------------------------------------- legend
def test_legend_draws_each_class_box_in_its_colour():
    names = ["background", "hair", "eye", "nose"]
    pal = make_palette(K)
    key = legend(names, pal)
    assert key.ndim == 3 and key.shape[2] == 3 and key.dtype == np.uint8
    assert key.shape[0] > 4 * 12 and key.shape[1] > 12 + len("3 background")  # one column
    # the centre of box k (4 px padding, 12 px boxes, rows >= 16 px apart) has colour k
    centres = [key[y, 4 + 6] for y in range(key.shape[0])]
    for k in range(K):
        assert any((c == pal[k]).all() for c in centres), f"no box of class {k}"
    wide = legend(names, pal, width=1000)
    assert wide.shape[1] == 1000 and wide.shape[0] < key.shape[0]  # one row
    with pytest.raises(ValueError, match="palette"):
        legend(names, pal[:3])


# ------------------------------------------------------------------------- grid
def test_preview_grid_writes_png_of_expected_size(tmp_path):
    B, H, W = 10, 16, 12
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((B, 3, H, W))).float()
    masks = torch.from_numpy(rng.integers(0, K, (B, H, W)))
    unc = torch.from_numpy(rng.random((B, H, W))).float()
    names, pal = [f"c{k}" for k in range(K)], make_palette(K)

    path = preview_grid(images, masks, unc, names, pal, tmp_path / "g.png", scale=1)
    cols, groups, gw, gh = grid_layout(B, (H, W))
    assert (cols, groups) == (8, 2)
    assert (gw, gh) == (8 * W + 9 * GRID_PAD, 6 * H + 7 * GRID_PAD)
    key = legend(names, pal, width=gw)
    scale_key = uncertainty_key(float(unc.max()), width=gw)
    grid = np.asarray(Image.open(path))
    width = max(gw, key.shape[1], scale_key.shape[1])
    assert grid.shape == (gh + key.shape[0] + scale_key.shape[0], width, 3)
    p = GRID_PAD
    np.testing.assert_array_equal(grid[p : p + H, p : p + W], to_uint8_image(images[0]))
    y = p + H + p
    np.testing.assert_array_equal(grid[y : y + H, p : p + W], overlay(images[0], masks[0], pal))
    y2 = y + H + p
    want_heat = heatmap(unc[0], vmin=0.0, vmax=float(unc.max()))
    np.testing.assert_array_equal(grid[y2 : y2 + H, p : p + W], want_heat)
    np.testing.assert_array_equal(grid[gh : gh + key.shape[0], : key.shape[1]], key)
    np.testing.assert_array_equal(grid[gh + key.shape[0] :, : scale_key.shape[1]], scale_key)

    auto = preview_grid(images, masks, unc, names, pal, tmp_path / "auto.png")
    scale = -(-GRID_MIN_TILE // H)
    _, _, gw2, gh2 = grid_layout(B, (H * scale, W * scale))
    assert Image.open(auto).size[1] == (
        gh2
        + legend(names, pal, width=gw2).shape[0]
        + uncertainty_key(float(unc.max()), width=gw2).shape[0]
    )


def test_preview_grid_rejects_mismatched_inputs(tmp_path):
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="do not match"):
        preview_grid(images, torch.zeros(3, 8, 8, dtype=torch.long), torch.rand(2, 8, 8),
                     ["a"], [[0, 0, 0]], tmp_path / "x.png")  # fmt: skip


# ---------------------------------------------------------------------- preview
def test_preview_from_files(models, tmp_path):
    path = preview(None, 3, tmp_path / "grid.png", seed=1, device="cpu", **models)
    img = Image.open(path)
    scale = -(-GRID_MIN_TILE // 32)
    _, _, gw, gh = grid_layout(3, (32 * scale, 32 * scale))
    names = [f"class_{k}" for k in range(K)]
    below = img.size[1] - gh - legend(names, make_palette(K), width=gw).shape[0]
    assert img.size[0] == gw
    # the uncertainty scale (its height depends on whether vmax's label fits one row)
    assert below in {uncertainty_key(v, width=gw).shape[0] for v in (0.0, 0.123, 0.5)}


def test_cli_preview(models, tmp_path, capsys):
    out = tmp_path / "grid.png"
    argv = ["preview", "--generator", models["generator"], "--interpreter",
            models["interpreter"], "--num", "2", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out


def test_cli_preview_bad_input_exits_2(models, tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    argv = ["preview", "--generator", models["generator"], "--interpreter", str(missing),
            "--out", str(tmp_path / "g.png")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]
    assert main(["preview", "--out", str(tmp_path / "g.png")]) == 2
    assert "PRESET" in capsys.readouterr().err


@pytest.mark.parametrize(
    "palette",
    [
        np.array([[12.7, 0, 0], [0, 0, 0]]),  # was truncated to 12
        np.array([[np.nan, 0, 0], [0, 0, 0]]),  # was cast to an arbitrary colour
        np.array([[True, False, False], [False, False, False]]),
    ],
    ids=["fraction", "nan", "bool"],
)
def test_colorize_refuses_palettes_that_are_not_integer_colours(palette):
    with pytest.raises(ValueError, match=r"palette values must be integers in 0\.\.255"):
        colorize(np.zeros((2, 2), dtype=np.int64), palette)
    with pytest.raises(ValueError, match=r"palette values must be integers in 0\.\.255"):
        colorize(torch.zeros(2, 2, dtype=torch.long), palette)


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_make_palette_refuses_a_seed_that_is_not_an_int_at_least_0(seed):
    """-1 failed inside numpy ("expected non-negative integer"), 1.5 was truncated to 1
    and "3" parsed."""
    with pytest.raises(ValueError, match=r"seed must be an int >= 0"):
        make_palette(5, seed=seed)
    assert make_palette(5, seed=np.int64(3)).tolist() == make_palette(5, seed=3).tolist()


# ---------------------------------------------------------------- uncertainty key
def test_uncertainty_key_shows_the_colour_scale_from_0_to_vmax():
    from dgan_data.viz import _LEGEND_BOX, _LEGEND_PAD, _SCALE_BAR

    key = uncertainty_key(0.5, width=300)
    assert key.shape[1] == 300 and key.dtype == np.uint8
    bar_row = key[_LEGEND_PAD + _LEGEND_BOX // 2]
    # the bar holds the heat map's colours in order: its first and last pixels are
    # heatmap(0) and heatmap(vmax), found side by side _SCALE_BAR px apart
    low, high = heatmap(np.array([[0.0, 1.0]]))[0]
    starts = [x for x in range(key.shape[1]) if (bar_row[x] == low).all()]
    assert starts, "no bar"
    x = starts[0]
    assert (bar_row[x + _SCALE_BAR - 1] == high).all()
    # the ramp gets brighter from left to right (viridis: dark purple to yellow)
    brightness = bar_row[x : x + _SCALE_BAR].astype(int).sum(1)
    assert brightness[-1] > brightness[0] + 300


def test_uncertainty_key_without_disagreement_has_no_bar():
    from dgan_data.viz import _LEGEND_BOX, _LEGEND_PAD

    key = uncertainty_key(0.0)
    low = heatmap(np.array([[0.0, 1.0]]))[0][0]
    row = key[_LEGEND_PAD + _LEGEND_BOX // 2]
    assert not any((row[x] == low).all() for x in range(key.shape[1]))
    assert (key < 128).any()  # the sentence is drawn
    with pytest.raises(ValueError, match="vmax"):
        uncertainty_key(-1.0)


def test_uncertainty_key_fits_a_narrow_grid_on_two_rows():
    wide, narrow = uncertainty_key(0.644), uncertainty_key(0.644, width=120)
    assert narrow.shape[1] == 120 and narrow.shape[0] > wide.shape[0]
    low = heatmap(np.array([[0.0, 1.0]]))[0][0]
    rows = [r for r in range(narrow.shape[0]) if any((narrow[r, x] == low).all()
                                                      for x in range(120))]  # fmt: skip
    assert rows and min(rows) > wide.shape[0] // 2  # the bar is on the second row
