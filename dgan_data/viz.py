"""Palettes, mask colouring, overlays, heat maps, legends and preview grids.

Palettes are generated, never pasted: :func:`make_palette` picks K colours that are
far apart in CIELAB (so neighbouring classes stay tellable apart on screen), with
class 0 (background) black and nothing close to white, the colour of ignored pixels.
Everything here works on numpy arrays (torch tensors are accepted) and needs only
numpy and Pillow; :func:`preview` is the one function that runs a model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "colorize",
    "heatmap",
    "legend",
    "make_palette",
    "overlay",
    "preview",
    "preview_grid",
]

#: Candidate colours per channel: a 16-level grid gives 4096 candidates.
_GRID_LEVELS = 16
_MAX_CLASSES = _GRID_LEVELS**3 - 2  # every candidate but black and white


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB in 0..255 -> (N, 3) CIELAB (D65 white)."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    L = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return np.stack([L, a, b], axis=1)


@lru_cache(maxsize=64)
def _palette(num_classes: int, seed: int) -> np.ndarray:
    levels = np.round(np.linspace(0, 255, _GRID_LEVELS))
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = _srgb_to_lab(grid)
    # The seed jitters the candidates a little: it changes which of several equally
    # distant colours wins, never how far apart the chosen ones are (about 1 Lab unit).
    lab_jittered = lab + np.random.default_rng(seed).normal(scale=1.0, size=lab.shape)
    black = 0
    white = len(grid) - 1
    chosen = [black]
    # distance of every candidate to its nearest chosen (or forbidden) colour
    nearest = np.minimum(
        np.linalg.norm(lab_jittered - lab[black], axis=1),
        np.linalg.norm(lab_jittered - lab[white], axis=1),
    )
    nearest[[black, white]] = -1.0
    for _ in range(1, num_classes):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(lab_jittered - lab[pick], axis=1))
        nearest[pick] = -1.0
    return grid[chosen].astype(np.uint8)


def make_palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """K well-separated colours as a (K, 3) uint8 array; class 0 (background) is black.

    Deterministic for a given ``(num_classes, seed)``, and a palette for K classes is
    the first K rows of the palette for more classes, so adding a class never
    recolours the others. White is kept free for ignored pixels.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if not 1 <= num_classes <= _MAX_CLASSES:
        raise ValueError(f"num_classes must be in 1..{_MAX_CLASSES}, got {num_classes}")
    return _palette(int(num_classes), int(seed)).copy()


def colorize(
    mask: Any,
    palette: Sequence[Sequence[int]] | np.ndarray,
    ignore_index: int | None = 255,
    ignore_color: Sequence[int] = (255, 255, 255),
) -> Any:
    """Class-id mask (..., H, W) -> uint8 colour image (..., H, W, 3).

    A numpy array gives a numpy array; a torch tensor gives a tensor on its device.
    Pixels equal to ``ignore_index`` get ``ignore_color``; any other id outside
    ``0..K-1`` is an error that names the offending values.
    """
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3), got shape {pal.shape}")
    if pal.size and (pal.min() < 0 or pal.max() > 255):
        raise ValueError("palette values must lie in 0..255")
    pal = pal.astype(np.uint8)
    ign_rgb = np.asarray(ignore_color, dtype=np.int64)
    if ign_rgb.shape != (3,) or ign_rgb.min() < 0 or ign_rgb.max() > 255:
        raise ValueError(f"ignore_color must be 3 ints in 0..255, got {ignore_color!r}")
    if type(mask).__module__.startswith("torch"):
        return _colorize_torch(mask, pal, ignore_index, ign_rgb)
    m = np.asarray(mask)
    if not np.issubdtype(m.dtype, np.integer):
        raise TypeError(f"mask must hold integer class ids, got dtype {m.dtype}")
    ignored = m == ignore_index if ignore_index is not None else np.zeros(m.shape, dtype=bool)
    valid = ~ignored
    _check_ids(m[valid], len(pal))
    out = np.empty((*m.shape, 3), dtype=np.uint8)
    out[valid] = pal[m[valid]]
    out[ignored] = ign_rgb.astype(np.uint8)
    return out


def _check_ids(ids: Any, num_classes: int) -> None:
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        values = sorted({int(v) for v in ids[bad].reshape(-1)[:1000].tolist()})
        raise ValueError(
            f"mask holds class ids {values[:10]} outside 0..{num_classes - 1} "
            f"(the palette has {num_classes} colours)"
        )


def _colorize_torch(mask: Any, pal: np.ndarray, ignore_index: int | None, ign: np.ndarray) -> Any:
    import torch

    if mask.dtype.is_floating_point or mask.dtype == torch.bool:
        raise TypeError(f"mask must hold integer class ids, got dtype {mask.dtype}")
    m = mask.long()
    if ignore_index is not None:
        ignored = m == ignore_index
    else:
        ignored = torch.zeros_like(m, dtype=torch.bool)
    _check_ids(m[~ignored], len(pal))
    table = torch.as_tensor(pal, device=m.device)
    out = table[torch.where(ignored, torch.zeros_like(m), m)]
    out[ignored] = torch.as_tensor(ign, dtype=torch.uint8, device=m.device)
    return out


# ------------------------------------------------------------------ overlays
def _numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_uint8_image(image: Any) -> np.ndarray:
    """An image as (H, W, 3) uint8: from (3, H, W) or (H, W, 3), float in [0, 1] or uint8."""
    img = _numpy(image)
    if img.ndim != 3 or 3 not in (img.shape[0], img.shape[-1]):
        raise ValueError(f"image must be (3, H, W) or (H, W, 3), got shape {img.shape}")
    if img.shape[-1] != 3:
        img = np.moveaxis(img, 0, -1)
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"image must be float in [0, 1] or uint8, got dtype {img.dtype}")
    return np.rint(np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay(
    image: Any,
    mask: Any,
    palette: Sequence[Sequence[int]] | np.ndarray,
    alpha: float = 0.5,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """Mask colours blended over an image: (H, W, 3) uint8.

    ``image``: (3, H, W) float in [0, 1] (or uint8 / HWC); ``mask``: (H, W) class ids.
    Pixel value: ``round((1 - alpha) * image_u8 + alpha * palette[class])``; ignored
    pixels keep the image as it is.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = to_uint8_image(image)
    m = _numpy(mask)
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

    ``vmin``/``vmax`` default to the finite minimum and maximum; a constant map is
    all dark. NaN pixels are grey. Piecewise-linear between 9 anchors (no matplotlib).
    """
    v = _numpy(values).astype(np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be (H, W), got shape {v.shape}")
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if vmin is None and finite.any() else float(vmin or 0.0)
    hi = float(np.max(v[finite])) if vmax is None and finite.any() else float(vmax or 0.0)
    t = np.zeros_like(v) if hi <= lo else np.clip((v - lo) / (hi - lo), 0.0, 1.0)
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
    from PIL import Image, ImageDraw, ImageFont

    pal = np.asarray(palette, dtype=np.int64)
    if pal.ndim != 2 or pal.shape[1] != 3 or len(pal) != len(class_names):
        raise ValueError(
            f"palette must be ({len(class_names)}, 3) for {len(class_names)} classes, "
            f"got shape {pal.shape}"
        )
    if len(class_names) == 0:
        raise ValueError("legend needs at least one class")
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [f"{k} {name}" for k, name in enumerate(class_names)]
    text_w = [probe.textbbox((0, 0), t, font=font)[2] for t in labels]
    top, bottom = probe.textbbox((0, 0), "Ag|", font=font)[1::2]
    row_h = max(_LEGEND_BOX, bottom) + _LEGEND_PAD
    entry_w = _LEGEND_BOX + _LEGEND_PAD + max(text_w)
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
        ty = y + (_LEGEND_BOX - (bottom - top)) // 2 - top
        draw.text((x + _LEGEND_BOX + _LEGEND_PAD, ty), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas).copy()


# ------------------------------------------------------------------- grids
GRID_PAD = 2
GRID_MAX_COLUMNS = 8
GRID_MIN_TILE = 64


def grid_layout(
    num: int, tile: tuple[int, int], max_columns: int = GRID_MAX_COLUMNS
) -> tuple[int, int, int, int]:
    """(columns, groups, width, height) of :func:`preview_grid`'s tile area.

    Samples run left to right, ``max_columns`` per group; each group is three rows
    (image, overlay, uncertainty); tiles are separated and framed by ``GRID_PAD`` px.
    """
    cols = max(1, min(num, max_columns))
    groups = math.ceil(num / cols)
    th, tw = tile
    width = cols * tw + (cols + 1) * GRID_PAD
    height = 3 * groups * th + (3 * groups + 1) * GRID_PAD
    return cols, groups, width, height


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
) -> Path:
    """Write a PNG: per sample the image, the mask overlay and the pixel uncertainty.

    ``images`` (B, 3, H, W) in [0, 1], ``masks`` (B, H, W), ``uncertainty`` (B, H, W)
    pixel scores (one colour scale for the whole grid, 0 .. the batch maximum).
    Tiles are enlarged ``scale`` times (nearest; None: the smallest integer making
    them at least ``GRID_MIN_TILE`` px high). A legend strip runs below the tiles;
    the image is ``max(grid width, legend width)`` wide. Returns the path.
    """
    from PIL import Image

    imgs, ms, us = _numpy(images), _numpy(masks), _numpy(uncertainty).astype(np.float64)
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
    if B == 0:
        raise ValueError("preview_grid needs at least one sample")
    if scale is None:
        scale = max(1, math.ceil(GRID_MIN_TILE / H))
    th, tw = H * scale, W * scale
    cols, _, grid_w, grid_h = grid_layout(B, (th, tw), max_columns)
    finite = np.isfinite(us)
    vmax = float(us[finite].max()) if finite.any() else 0.0
    key = legend(class_names, palette, width=grid_w)
    canvas = np.full((grid_h + key.shape[0], max(grid_w, key.shape[1]), 3), 255, np.uint8)
    for b in range(B):
        group, col = divmod(b, cols)
        tiles = (
            to_uint8_image(imgs[b]),
            overlay(imgs[b], ms[b], palette, alpha=alpha),
            heatmap(us[b], vmin=0.0, vmax=vmax),
        )
        x = GRID_PAD + col * (tw + GRID_PAD)
        for r, tile in enumerate(tiles):
            row = 3 * group + r
            y = GRID_PAD + row * (th + GRID_PAD)
            canvas[y : y + th, x : x + tw] = tile.repeat(scale, axis=0).repeat(scale, axis=1)
    canvas[grid_h:, : key.shape[1]] = key
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path


# ------------------------------------------------------------------ preview
def preview(
    source: Any = None,
    num: int = 16,
    out: str | Path = "grid.png",
    seed: int = 0,
    *,
    generator: Any = None,
    interpreter: Any = None,
    device: Any = None,
    batch_size: int = 8,
    **stream_options: Any,
) -> Path:
    """Generate ``num`` samples and write their :func:`preview_grid` to ``out``.

    ``source``: a preset name, a ``DatasetGANStream``, or None with ``generator=`` and
    ``interpreter=``. Sample i has the seed of export candidate i
    (``sample_seed(seed, 0, i)``), so a preview shows the first candidates an export
    with the same seed would write (before the uncertainty filter).
    """
    import torch

    from .export import _build_stream, _class_info, _stream_runtime
    from .stream import sample_seed

    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive int, got {num!r}")
    stream, preset = _build_stream(source, generator, interpreter, device, stream_options)
    seeds = [sample_seed(seed, 0, i) for i in range(num)]
    images, masks, pixel_u = [], [], []
    for start in range(0, num, batch_size):
        chunk = seeds[start : start + batch_size]
        out_b = stream.generate(chunk)
        u = out_b.get("pixel_uncertainty")
        if u is None:
            u = _pixel_uncertainty(stream, chunk)
        if tuple(u.shape[-2:]) != tuple(out_b["mask"].shape[-2:]):
            u = torch.nn.functional.interpolate(
                u[:, None].float(), size=tuple(out_b["mask"].shape[-2:]), mode="nearest"
            )[:, 0]
        images.append(out_b["image"].float().cpu())
        masks.append(out_b["mask"].cpu())
        pixel_u.append(u.float().cpu())
    interp = _stream_runtime(stream)["interp"]
    names, palette = _class_info(preset, interp)
    path = preview_grid(
        torch.cat(images), torch.cat(masks), torch.cat(pixel_u), names, palette, out
    )
    log.info("wrote a preview of %d samples to %s", num, path)
    return path


def _pixel_uncertainty(stream: Any, seeds: list[int]) -> Any:
    """Per-pixel JS divergence for ``seeds``, computed the way the stream labels them."""
    import torch

    from .export import _stream_runtime
    from .latents import z_from_seeds

    rt = _stream_runtime(stream)
    G, interp = rt["G"], rt["interp"]
    with torch.no_grad():
        z = z_from_seeds(seeds, G.z_dim, device=rt["device"])
        w = G.mapping(z, rt["psi"], getattr(stream, "truncation_cutoff", None))
        _, feats = G.synthesize(w, noise=getattr(stream, "noise", "const"))
        pred = interp.predict(feats, output_size=rt.get("frame"), crop=rt.get("crop"))
    return pred.pixel_uncertainty
