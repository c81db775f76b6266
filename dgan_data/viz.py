"""Drawing: mask overlays, heat maps, legends and preview grids.

Everything here works on numpy arrays (torch tensors are accepted), needs only numpy
and Pillow, and runs no model (``preview.py`` does). Palettes and mask colouring live
in ``palette.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .conventions import (
    IGNORE_INDEX,
    as_numpy,
    check_bool,
    check_number,
    check_palette,
    to_uint8_image,
)
from .fileio import write_png
from .palette import colorize, make_palette

log = logging.getLogger(__name__)

__all__ = [
    "colorize",
    "heatmap",
    "legend",
    "make_palette",
    "overlay",
    "preview_grid",
    "to_uint8_image",
    "uncertainty_key",
]


# ------------------------------------------------------------------ overlays
def overlay(
    image: Any,
    mask: Any,
    palette: Sequence[Sequence[int]] | np.ndarray,
    alpha: float = 0.5,
    ignore_index: int | None = IGNORE_INDEX,
) -> np.ndarray:
    """Mask colours blended over an image: (H, W, 3) uint8.

    ``image``: (3, H, W) float in [0, 1] (or uint8 / HWC); ``mask``: (H, W) class ids.
    Pixel value: ``round((1 - alpha) * image_u8 + alpha * palette[class])``; ignored
    pixels keep the image as it is.
    """
    alpha = check_number(alpha, "alpha", low=0.0, high=1.0)  # a 0-d tensor too
    img = to_uint8_image(image)
    m = as_numpy(mask)
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask shape {m.shape} differs from the image's {img.shape[:2]}")
    colors = colorize(m, palette, ignore_index=ignore_index)
    blended = np.rint((1.0 - alpha) * img.astype(np.float64) + alpha * colors)
    out = blended.astype(np.uint8)
    if ignore_index is not None:
        ignored = m == ignore_index
        out[ignored] = img[ignored]
    return out


#: Anchors of the viridis colour map (perceptually uniform, colour-blind safe).
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
_NAN_COLOR = (128, 128, 128)


def heatmap(values: Any, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Scalar map (H, W) -> (H, W, 3) uint8 through a viridis-like colour map.

    ``vmin``/``vmax`` (finite numbers, ``vmin <= vmax``) default to the finite minimum
    and maximum (with one bound given, the other never passes it); values outside are
    clipped to the end colours; a constant map is all dark. NaN and inf pixels are grey
    (an all-NaN map is all grey). Piecewise-linear between 9 anchors (no matplotlib).
    """
    v = as_numpy(values).astype(np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be (H, W), got shape {v.shape}")
    lo_given = None if vmin is None else check_number(vmin, "vmin")
    hi_given = None if vmax is None else check_number(vmax, "vmax")
    if lo_given is not None and hi_given is not None and lo_given > hi_given:
        raise ValueError(f"vmin ({lo_given:g}) must not exceed vmax ({hi_given:g})")
    finite = np.isfinite(v)
    lo = lo_given if lo_given is not None else float(np.min(v[finite])) if finite.any() else 0.0
    hi = hi_given if hi_given is not None else float(np.max(v[finite])) if finite.any() else 0.0
    # one bound given: the other is the data's, but never past it (vmax=1 over data
    # 5..6 made the range empty and drew 6 darkest, though it lies above vmax)
    if lo_given is None:
        lo = min(lo, hi)
    if hi_given is None:
        hi = max(hi, lo)
    # halves: the range of two float64s, e.g. -1e308..1e308, overflows; half of it never
    if hi > lo:
        shifted = np.where(finite, v, lo) / 2 - lo / 2
        t = np.clip(shifted / (hi / 2 - lo / 2), 0.0, 1.0)
    else:  # an empty range: above it is the top colour, the rest (a constant map) dark
        t = (v > hi).astype(np.float64)
    t = np.where(finite, t, 0.0)
    xs = np.linspace(0.0, 1.0, len(_VIRIDIS))
    rgb = np.stack([np.interp(t, xs, _VIRIDIS[:, c]) for c in range(3)], axis=-1)
    out = np.rint(rgb).astype(np.uint8)
    out[~finite] = _NAN_COLOR
    return out


# -------------------------------------------------------------------- legend
_LEGEND_PAD = 4
_LEGEND_BOX = 12
_LEGEND_GAP = 12  # between columns


def _text_layout() -> tuple[Any, Callable[[str], int], int, int]:
    """What the keys below a grid draw text with: Pillow's default font, the width of a
    text in it, the height of a key row (a box or a line, and padding) and the offset
    from a row's top that centres a line of text on a box."""
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    top, bottom = probe.textbbox((0, 0), "Ag|", font=font)[1::2]

    def text_w(text: str) -> int:
        return int(probe.textbbox((0, 0), text, font=font)[2]) if text else 0

    row_h = max(_LEGEND_BOX, bottom) + _LEGEND_PAD
    return font, text_w, row_h, (_LEGEND_BOX - (bottom - top)) // 2 - top


def legend(
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]] | np.ndarray,
    width: int | None = None,
) -> np.ndarray:
    """A key of coloured boxes and class ids/names: (h, w, 3) uint8 on white.

    Entries run row by row in as many columns as fit ``width`` (None: one column);
    an entry wider than ``width`` still gets a column of its own. Uses Pillow's
    default font.
    """
    if len(class_names) == 0:
        raise ValueError("legend needs at least one class")
    if width is not None:
        _check_count(width, "width", "legend width in pixels")
        if width > MAX_CANVAS_SIDE:
            raise ValueError(f"width must be at most {MAX_CANVAS_SIDE} px, got {width!r:.40}")
    pal = np.asarray(check_palette(palette, len(class_names)), dtype=np.int64)
    font, text_w, row_h, text_dy = _text_layout()
    labels = [f"{k} {name}" for k, name in enumerate(class_names)]
    entry_w = _LEGEND_BOX + _LEGEND_PAD + max(text_w(t) for t in labels)
    col_w = entry_w + _LEGEND_GAP
    cols = 1 if width is None else max(1, (width - 2 * _LEGEND_PAD + _LEGEND_GAP) // col_w)
    cols = min(cols, len(labels))
    rows = math.ceil(len(labels) / cols)
    w = 2 * _LEGEND_PAD + cols * col_w - _LEGEND_GAP
    if width is not None:
        w = max(w, int(width))
    h = _LEGEND_PAD + rows * row_h
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(labels):
        r, c = divmod(k, cols)
        x = _LEGEND_PAD + c * col_w
        y = _LEGEND_PAD + r * row_h
        color = tuple(int(v) for v in pal[k])
        draw.rectangle(
            [x, y, x + _LEGEND_BOX - 1, y + _LEGEND_BOX - 1], fill=color, outline=(0, 0, 0)
        )
        draw.text((x + _LEGEND_BOX + _LEGEND_PAD, y + text_dy), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas).copy()


_SCALE_BAR = 128  # px, the colour bar of :func:`uncertainty_key`


def uncertainty_key(vmax: float, width: int | None = None) -> np.ndarray:
    """The scale of a preview's uncertainty rows: ``uncertainty (JS) 0 [bar] vmax``,
    (h, w, 3) uint8 on white, at least ``width`` wide; where one row would be wider than
    ``width``, the bar goes on a second row, shortened to fit (down to 16 px). A
    ``vmax`` of 0 says that every pixel scored 0 (an interpreter of one model has no
    disagreement to show)."""
    vmax = check_number(vmax, "vmax", low=0.0)
    if width is not None:
        _check_count(width, "width", "key width in pixels")
    font, text_w, row_h, text_dy = _text_layout()
    if vmax > 0:
        title, low, high = "uncertainty (JS)", "0", f"{vmax:.3g}"
    else:
        title, low, high = "uncertainty (JS): all 0", "", ""
    one_row = text_w(f"{title} {low}") + (_SCALE_BAR + text_w(high) + 2 * _LEGEND_PAD)
    split = bool(high) and width is not None and 2 * _LEGEND_PAD + one_row > width
    bar = 0
    if high:
        bar = _SCALE_BAR
        if split:
            room = int(width or 0) - 4 * _LEGEND_PAD - text_w(low) - text_w(high)
            bar = max(16, min(_SCALE_BAR, room - _LEGEND_PAD))
    rows = 2 if split else 1
    first = title if split else f"{title} {low}".strip()
    second_w = text_w(low) + bar + text_w(high) + 3 * _LEGEND_PAD if split else 0
    need = 2 * _LEGEND_PAD + max(
        text_w(first) + ((bar + text_w(high) + 2 * _LEGEND_PAD) if high and not split else 0),
        second_w,
    )
    w = max(need, int(width or 0))
    canvas = Image.new("RGB", (w, _LEGEND_PAD + rows * row_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    ty = _LEGEND_PAD + text_dy
    draw.text((_LEGEND_PAD, ty), first, fill=(0, 0, 0), font=font)
    if not high:
        return np.asarray(canvas).copy()
    y = _LEGEND_PAD + (row_h if split else 0)
    if split:
        draw.text((_LEGEND_PAD, ty + row_h), low, fill=(0, 0, 0), font=font)
        x = 2 * _LEGEND_PAD + text_w(low)
    else:
        x = 2 * _LEGEND_PAD + text_w(first)
    draw.text(
        (x + bar + _LEGEND_PAD, ty + (row_h if split else 0)), high, fill=(0, 0, 0), font=font
    )
    out = np.asarray(canvas).copy()
    ramp = heatmap(np.tile(np.linspace(0.0, 1.0, bar), (_LEGEND_BOX, 1)), 0.0, 1.0)
    out[y : y + _LEGEND_BOX, x : x + bar] = ramp
    return out


# ------------------------------------------------------------------- grids
GRID_PAD = 2
GRID_MAX_COLUMNS = 8
GRID_MIN_TILE = 64


def grid_layout(
    num: int, tile: tuple[int, int], max_columns: int = GRID_MAX_COLUMNS, rows: int = 3
) -> tuple[int, int, int, int]:
    """(columns, groups, width, height) of :func:`preview_grid`'s tile area.

    Samples run left to right, ``max_columns`` per group; each group is ``rows`` rows
    (image, overlay, and the uncertainty where there is one); tiles are separated and
    framed by ``GRID_PAD`` px.
    """
    cols = max(1, min(num, max_columns))
    groups = math.ceil(num / cols)
    th, tw = tile
    width = cols * tw + (cols + 1) * GRID_PAD
    height = rows * groups * th + (rows * groups + 1) * GRID_PAD
    return cols, groups, width, height


#: Largest side and area of a drawn canvas: 256 samples of 1,024 px (the preview's
#: bound) fit; ``scale=10**5`` asked for 10 TiB.
MAX_CANVAS_SIDE = 65_536
MAX_CANVAS_PIXELS = 2**30


def _check_count(value: Any, name: str, what: str) -> None:
    """``value`` is an int >= 1 (a bool or a float is refused), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} ({what}) must be an int >= 1, got {value!r:.40}")


def preview_grid(
    images: Any,
    masks: Any,
    uncertainty: Any,
    class_names: Sequence[str],
    palette: Sequence[Sequence[int]] | np.ndarray,
    path: str | Path,
    *,
    alpha: float = 0.5,
    scale: int | None = None,
    max_columns: int = GRID_MAX_COLUMNS,
    named_by_user: bool = False,
) -> Path:
    """Write a PNG: per sample the image, the mask overlay and the pixel uncertainty,
    with a legend of the classes and the uncertainty's colour scale below.

    ``images`` (B, 3, H, W) in [0, 1], ``masks`` (B, H, W), ``uncertainty`` (B, H, W)
    pixel scores (one colour scale for the whole grid, 0 .. the batch maximum), or None
    for masks without one (an annotation folder): two rows per sample, no scale.
    Tiles are enlarged ``scale`` times (nearest; None: the smallest integer making
    them at least ``GRID_MIN_TILE`` px high), at most ``max_columns`` samples per row
    (both ints >= 1). A legend strip runs below the tiles;
    the image is ``max(grid width, legend width)`` wide. ``named_by_user``: ``path``
    is one the user named, so a pipe there is written to (see
    :func:`dgan_data.fileio.atomic_write`).
    Returns the path.
    """
    imgs, ms = as_numpy(images), as_numpy(masks)
    with_uncertainty = uncertainty is not None
    us = (
        as_numpy(uncertainty).astype(np.float64)
        if with_uncertainty
        else np.zeros(ms.shape, np.float64)
    )
    if imgs.ndim != 4 or ms.ndim != 3 or us.ndim != 3:
        raise ValueError(
            f"expected images (B, 3, H, W), masks and uncertainty (B, H, W); got shapes "
            f"{imgs.shape}, {ms.shape}, {us.shape}"
        )
    B, H, W = ms.shape
    if len(imgs) != B or len(us) != B or imgs.shape[-2:] != (H, W) or us.shape[1:] != (H, W):
        raise ValueError(
            f"images {imgs.shape}, masks {ms.shape} and uncertainty {us.shape} do not match"
        )
    if imgs.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W) RGB, got shape {imgs.shape}")
    if B == 0:
        raise ValueError("preview_grid needs at least one sample")
    if H == 0 or W == 0:  # H = 0 divided by zero; W = 0 wrote a grid of empty tiles
        raise ValueError(f"images and masks must be at least 1x1 px, got {H}x{W}")
    if scale is not None:
        _check_count(scale, "scale", "tile enlargement")
    _check_count(max_columns, "max_columns", "samples per row")
    check_bool(named_by_user, "named_by_user")
    if scale is None:
        scale = max(1, math.ceil(GRID_MIN_TILE / H))
    th, tw = H * scale, W * scale
    rows = 3 if with_uncertainty else 2
    cols, _, grid_w, grid_h = grid_layout(B, (th, tw), max_columns, rows)
    if max(grid_w, grid_h) > MAX_CANVAS_SIDE or grid_w * grid_h > MAX_CANVAS_PIXELS:
        raise ValueError(
            f"the grid would be {grid_w}x{grid_h} px (scale {scale}, {B} samples of {H}x{W}, "
            f"at most {max_columns} per row): more than {MAX_CANVAS_SIDE} px a side or "
            f"{MAX_CANVAS_PIXELS:,} pixels; use a smaller scale or fewer samples"
        )
    finite = np.isfinite(us)
    vmax = max(0.0, float(us[finite].max())) if finite.any() else 0.0  # vmin is 0
    key = legend(class_names, palette, width=grid_w)
    scale_key = (
        uncertainty_key(vmax, width=grid_w) if with_uncertainty else np.zeros((0, 0, 3), np.uint8)
    )
    canvas = np.full(
        (
            grid_h + key.shape[0] + scale_key.shape[0],
            max(grid_w, key.shape[1], scale_key.shape[1]),
            3,
        ),
        255,
        np.uint8,
    )
    for b in range(B):
        group, col = divmod(b, cols)
        # channels last here: a numpy (3, H, 3) sample (3 px wide) read as (H, W, 3)
        # was drawn transposed, or refused as not matching its mask
        image = to_uint8_image(np.moveaxis(imgs[b], 0, -1))
        tiles = (
            image,
            overlay(image, ms[b], palette, alpha=alpha),
            heatmap(us[b], vmin=0.0, vmax=vmax),
        )[:rows]
        x = GRID_PAD + col * (tw + GRID_PAD)
        for r, tile in enumerate(tiles):
            row = rows * group + r
            y = GRID_PAD + row * (th + GRID_PAD)
            canvas[y : y + th, x : x + tw] = tile.repeat(scale, axis=0).repeat(scale, axis=1)
    canvas[grid_h : grid_h + key.shape[0], : key.shape[1]] = key
    canvas[grid_h + key.shape[0] :, : scale_key.shape[1]] = scale_key
    path = Path(path)
    write_png(path, canvas, "RGB", named_by_user=named_by_user)
    return path
