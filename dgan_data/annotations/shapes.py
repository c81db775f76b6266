"""Shapes drawn in annotation tools, and the rasterising that turns them into masks.

The readers in :mod:`.tool_readers` turn each tool's export into :class:`_Item` objects
(one per image: labeled shapes or a raster of label indices); :mod:`.tools` paints them
into masks. Polygons are inside where a pixel centre is (even-odd rule), circles where
the centre is within the radius; RLE follows COCO's column-major convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MaskImportError",
    "check_rle",
    "decode_rle",
    "rasterize_ellipse",
    "rasterize_polygon",
    "rle_counts_from_string",
    "voc_colormap",
]

#: The label of raster exports (cvat-mask, voc) that marks pixels nobody painted.
BACKGROUND_LABEL = "background"
#: Largest coordinate accepted in a shape (images are far smaller; keeps arithmetic exact).
MAX_COORDINATE = 1e7
#: Largest side of a run-length-encoded bitmap: checked before it is decoded, so a
#: hostile size fails with a message instead of a many-GiB allocation.
MAX_RLE_SIDE = 16384

Affine = tuple[float, float, float, float]  # (scale_y, scale_x, offset_y, offset_x)


class MaskImportError(ValueError):
    """Bad tool input; ``problems`` lists each, the message is one line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "; ".join(self.problems[:3])
        more = len(self.problems) - 3
        super().__init__(
            head + (f"; ... ({len(self.problems)} problems in all)" if more > 0 else "")
        )


# ------------------------------------------------------------------ rasterising
#: Edge-row crossings a polygon is rasterised with at once (memory: ~40 bytes each).
POLYGON_CROSSINGS_PER_STEP = 1 << 18


def rasterize_polygon(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside the polygon ``points`` (n, 2) of (x, y): bool (H, W).

    Even-odd rule; pixel (r, c) has its centre at (c + 0.5, r + 0.5). An edge counts for
    the rows whose centre y lies in [min y, max y) and a crossing at x turns on the
    centres at x or right of it, so centres on a left or top edge are inside, on a right
    or bottom edge outside. Only the rows an edge spans are visited, in steps of
    :data:`POLYGON_CROSSINGS_PER_STEP` crossings, so memory stays bounded whatever the
    number of points (a polygon of 100,000 points over 256 rows took 800 MB).
    """
    pts = np.asarray(points, dtype=np.float64)
    xa, ya = pts[:, 0], pts[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    # each edge from its lower end (smaller y) to its upper end, so two polygons that
    # share an edge, running it in opposite directions, compute the same crossings to
    # the last bit: one of them owns every centre on it, never neither or both
    down = yb < ya
    x0, y0 = np.where(down, xb, xa), np.where(down, yb, ya)
    x1, y1 = np.where(down, xa, xb), np.where(down, ya, yb)
    # rows r with r + 0.5 in [min y, max y): exact, as coordinates are far below 2**52
    first = np.clip(np.ceil(np.minimum(y0, y1) - 0.5), 0, height).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(y0, y1) - 0.5), 0, height).astype(np.int64)
    spans = np.maximum(stop - first, 0)
    edges = np.flatnonzero(spans)
    toggles = np.zeros((height, width + 1), dtype=np.int64)
    ends = np.cumsum(spans[edges])
    start_edge = 0
    while start_edge < len(edges):
        done = ends[start_edge - 1] if start_edge else 0
        end_edge = int(np.searchsorted(ends, done + POLYGON_CROSSINGS_PER_STEP, side="right"))
        chunk = edges[start_edge : max(end_edge, start_edge + 1)]
        start_edge += len(chunk)
        count = spans[chunk]
        edge = np.repeat(chunk, count)
        offset = np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
        rows = first[edge] + offset
        yc = rows + 0.5
        dy = y1[edge] - y0[edge]  # never 0: a horizontal edge spans no row
        xs = x0[edge] + (yc - y0[edge]) / dy * (x1[edge] - x0[edge])
        cols = np.clip(np.ceil(xs - 0.5), 0, width).astype(np.int64)
        np.add.at(toggles, (rows, cols), 1)
    return (np.cumsum(toggles[:, :width], axis=1) & 1).astype(bool)


def rasterize_ellipse(
    cx: float, cy: float, rx: float, ry: float, height: int, width: int
) -> np.ndarray:
    """Pixels whose centre lies in the ellipse (boundary included): bool (H, W)."""
    ys = (np.arange(height) + 0.5 - cy) / ry
    xs = (np.arange(width) + 0.5 - cx) / rx
    return ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0


def rle_counts_from_string(text: str) -> list[int]:
    """Run lengths of a compressed COCO RLE string (the COCO API's ``rleFrString``).

    Each count is written in 5-bit groups, least significant first, as characters
    ``48 + group`` with bit 0x20 meaning "more groups follow" and bit 0x10 of the last
    group the sign; from the fourth count on, the value stored is the difference to
    the count two places earlier.
    """
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("compressed RLE string ends inside a count")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[pos]!r} at {pos} is not RLE code")
            if shift > 60:
                raise ValueError(f"count at {pos} is longer than 64 bits")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos, shift = pos + 1, shift + 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def check_rle(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """The run lengths of a COCO RLE of size (height, width) as int64, checked (sizes,
    counts, their sum) without decoding: a few bytes of compressed counts can describe
    a 16384 x 16384 bitmap, so readers keep the runs and decode one shape at a time."""
    if not (0 < height <= MAX_RLE_SIDE and 0 < width <= MAX_RLE_SIDE):
        raise ValueError(f"RLE size {height}x{width}: each side must be in 1..{MAX_RLE_SIDE}")
    pixels = height * width
    # checked as Python ints: a count beyond int64, or counts whose int64 sum wraps
    # round to the right total, would crash or exhaust np.repeat
    if isinstance(counts, (str, bytes)) or not all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= pixels
        for c in counts
    ):
        raise ValueError(f"RLE counts must be integers in 0..{pixels} (the pixels of its size)")
    total = sum(int(c) for c in counts)
    if total != pixels:
        raise ValueError(
            f"RLE counts add up to {total} pixels, its size {height}x{width} has {pixels}"
        )
    return np.asarray(counts, dtype=np.int64).reshape(-1)


def decode_rle(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """A COCO run-length encoding (column-major, starting with 0s) as bool (H, W)."""
    return _decode_runs(check_rle(counts, height, width), height, width)


def _decode_runs(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    """Runs that :func:`check_rle` accepted, as bool (H, W)."""
    bits = np.repeat((np.arange(runs.size) & 1).astype(bool), runs)
    return bits.reshape(width, height).T.copy()


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The Pascal VOC palette: colour of index i from i's bits, spread over r, g, b."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


def _sample_raster(array: np.ndarray, out_hw: tuple[int, int], affine: Affine) -> np.ndarray:
    """``array`` resampled to ``out_hw``: each output pixel takes the source pixel under
    its centre (nearest), through ``affine``."""
    sy, sx, oy, ox = affine
    rows = np.floor((np.arange(out_hw[0]) + 0.5) / sy + oy).astype(np.int64)
    cols = np.floor((np.arange(out_hw[1]) + 0.5) / sx + ox).astype(np.int64)
    rows = np.clip(rows, 0, array.shape[0] - 1)
    cols = np.clip(cols, 0, array.shape[1] - 1)
    return array[rows[:, None], cols[None, :]]


# ------------------------------------------------------------------ shapes
@dataclass
class _Shape:
    """One object of a vector export, painted in order; ``where`` names it for errors."""

    label: str
    where: str
    crowd: bool = False

    def region(self, out_hw: tuple[int, int], affine: Affine) -> np.ndarray:
        raise NotImplementedError


@dataclass
class _Polygons(_Shape):
    polygons: list[np.ndarray] = field(default_factory=list)  # (n, 2) x, y each

    def region(self, out_hw: tuple[int, int], affine: Affine) -> np.ndarray:
        sy, sx, oy, ox = affine
        out = np.zeros(out_hw, dtype=bool)
        for pts in self.polygons:
            mapped = np.stack([(pts[:, 0] - ox) * sx, (pts[:, 1] - oy) * sy], axis=1)
            out |= rasterize_polygon(mapped, *out_hw)
        return out


@dataclass
class _Ellipse(_Shape):
    centre: tuple[float, float] = (0.0, 0.0)  # x, y
    radius: float = 1.0

    def region(self, out_hw: tuple[int, int], affine: Affine) -> np.ndarray:
        sy, sx, oy, ox = affine
        cx, cy = (self.centre[0] - ox) * sx, (self.centre[1] - oy) * sy
        return rasterize_ellipse(cx, cy, self.radius * sx, self.radius * sy, *out_hw)


@dataclass
class _Bitmap(_Shape):
    """A COCO RLE kept as its checked runs and decoded only while it is painted, so a
    file's memory is that of its counts plus one bitmap, not one bitmap per shape."""

    runs: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    size: tuple[int, int] = (1, 1)  # (height, width)

    def region(self, out_hw: tuple[int, int], affine: Affine) -> np.ndarray:
        return _sample_raster(_decode_runs(self.runs, *self.size), out_hw, affine)


@dataclass
class _Item:
    """What a tool says about one image: shapes to paint, or a raster of label indices."""

    key: str  # the image's file name without folders and extension
    where: str  # file (and entry) for messages
    size: tuple[int, int] | None  # (height, width) the tool gives, None = unknown
    shapes: list[_Shape] = field(default_factory=list)
    raster: np.ndarray | None = None  # int label indices into ``names``, -1 = ignore
    names: list[str] = field(default_factory=list)
    # a raster painted by hand (palette format): all background is a drawn mask, not the
    # background a tool writes for an image nobody labelled
    painted: bool = False

    def labels(self) -> list[str]:
        """Label names this item uses."""
        if self.raster is None:
            return [s.label for s in self.shapes]
        used = np.unique(self.raster)
        return [self.names[i] for i in used if i >= 0]

    def is_empty(self) -> bool:
        if self.raster is None:
            return not self.shapes
        return not self.painted and all(name == BACKGROUND_LABEL for name in self.labels())


def _key_of(name: str) -> str:
    """A file name without folders (``/`` or ``\\``) and extension."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base[1:] else base


def _is_number(v: Any) -> bool:
    """A coordinate: a finite number of sane size."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return ok and abs(v) <= MAX_COORDINATE  # False for NaN and inf; any int size


def _is_id(v: Any) -> bool:
    """A COCO id: an int or a string."""
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _points(values: Any, where: str, problems: list[str]) -> np.ndarray | None:
    """A list of [x, y] pairs as (n, 2) float, or None with the problem recorded."""
    ok = isinstance(values, list) and all(
        isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in values
    )
    if not ok:
        problems.append(
            f"{where}: points must be a list of [x, y] numbers within "
            f"+-{MAX_COORDINATE:,.0f} (finite; no bools or strings)"
        )
        return None
    return np.asarray(values, dtype=np.float64).reshape(-1, 2)


def _need_points(pts: np.ndarray, need: int, what: str, where: str, problems: list[str]) -> bool:
    if len(pts) < need:
        problems.append(f"{where}: a {what} needs at least {need} points, got {len(pts)}")
        return False
    return True
