"""Class palettes and mask colouring (no drawing of figures: see ``viz``).

Palettes are generated, never pasted: :func:`make_palette` picks K colours that are
far apart in CIELAB (so neighbouring classes stay tellable apart on screen), with
class 0 (background) black and nothing close to white, the colour of ignored pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .conventions import IGNORE_INDEX, as_index, check_int, check_palette, keyword_hints

__all__ = ["colorize", "make_palette", "srgb_to_lab"]

#: Candidate colours per channel: a 16-level grid gives 4096 candidates.
_GRID_LEVELS = 16
_MAX_CLASSES = _GRID_LEVELS**3 - 2  # every candidate but black and white


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
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
    lab = srgb_to_lab(grid)
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


@keyword_hints
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
    return _palette(int(num_classes), check_int(seed, "seed", low=0)).copy()


def colorize(
    mask: Any,
    palette: Sequence[Sequence[int]] | np.ndarray,
    ignore_index: int | None = IGNORE_INDEX,
    ignore_color: Sequence[int] = (255, 255, 255),
) -> Any:
    """Class-id mask (..., H, W) -> uint8 colour image (..., H, W, 3).

    A numpy array gives a numpy array; a torch tensor gives a tensor on its device.
    Pixels equal to ``ignore_index`` (None or an int: True or 1.0 painted class 1 as
    ignored) get ``ignore_color``; any other id outside ``0..K-1`` is an error that names
    the offending values. Two classes may share a colour here: a drawing loses no label.
    """
    pal = _colour_table(palette)
    ignore_index = _check_ignore_index(ignore_index)
    try:  # 12.7 was truncated to 12, True read as 1
        ign_rgb = np.asarray(check_palette([ignore_color], 1, "ignore_color")[0], np.int64)
    except (TypeError, ValueError):
        raise ValueError(
            f"ignore_color must be 3 ints in 0..255, got {ignore_color!r:.60}"
        ) from None
    if isinstance(mask, torch.Tensor):
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


def _colour_table(palette: Any) -> np.ndarray:
    """``palette`` as a (K, 3) uint8 table; anything but integers in 0..255 is a
    ValueError naming the values (a float such as 12.7 was truncated, NaN cast to an
    arbitrary colour, None or a string failed inside numpy)."""
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3), got shape {pal.shape}")
    if pal.size and not np.issubdtype(pal.dtype, np.integer):
        # not min()/max(): they raise on None and strings
        # the rows as given: numpy turned every value of [[0, 0, 0], [1, 2, "x"]] into text
        rows = pal.tolist() if isinstance(palette, (np.ndarray, torch.Tensor)) else palette
        bad = next((row for row in rows if not all(map(_is_colour_value, row))), None)
        shown = f"dtype {pal.dtype}" if bad is None else f"{bad!r:.60}"
        raise ValueError(f"palette values must be integers in 0..255, got {shown}")
    if pal.size and (pal.min() < 0 or pal.max() > 255):
        raise ValueError(
            f"palette values must be integers in 0..255, got {pal.dtype} in "
            f"[{pal.min()}, {pal.max()}]"
        )
    if not isinstance(palette, np.ndarray) and any(
        isinstance(v, (bool, np.bool_)) for row in palette for v in row
    ):  # numpy turned [True, False, True] into the colour (1, 0, 1)
        raise ValueError("palette values must be integers in 0..255, got a bool")
    return pal.astype(np.uint8)


def _is_colour_value(value: Any) -> bool:
    number = as_index(value)
    return number is not None and 0 <= number <= 255


def _check_ignore_index(value: Any) -> int | None:
    """None, or ``value`` as an int: True or 1.0 painted class 1 as ignored, and 1.5
    matched no pixel in silence."""
    if value is None:
        return None
    try:
        return check_int(value, "ignore_index")
    except ValueError:
        raise ValueError(f"ignore_index must be None or an int, got {value!r:.80}") from None


def _check_ids(ids: Any, num_classes: int) -> None:
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        values = sorted({int(v) for v in ids[bad].reshape(-1)[:1000].tolist()})
        raise ValueError(
            f"mask holds class ids {values[:10]} outside 0..{num_classes - 1} "
            f"(the palette has {num_classes} colours)"
        )


def _colorize_torch(mask: Any, pal: np.ndarray, ignore_index: int | None, ign: np.ndarray) -> Any:
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
