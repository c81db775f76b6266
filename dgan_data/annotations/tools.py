"""Import masks drawn in annotation tools into an annotation folder.

:func:`import_masks` fills ``masks/<id>.png`` of a folder written by ``dgan-data sample``
from one of these exports (``format``):

- ``coco``: a COCO JSON file; ``annotations[].segmentation`` as polygons, uncompressed
  RLE (``counts`` a list) or compressed RLE (``counts`` a string, the COCO API's
  LEB128-like code). ``iscrowd`` regions get their category (``crowd="class"``, CVAT
  exports brush masks that way) or 255 (``crowd="ignore"``).
- ``labelme``: a folder of LabelMe JSON files (or one file); shapes ``polygon``,
  ``rectangle`` (two corners) and ``circle`` (centre, a point on the circle).
- ``cvat-mask``: CVAT's "Segmentation mask 1.1" export: ``SegmentationClass/*.png``
  colour masks and ``labelmap.txt`` (``name:r,g,b::``); without ``labelmap.txt``, the
  Pascal VOC colours and class names.
- ``voc``: Pascal VOC palette PNGs (``SegmentationClass/*.png`` or a folder of them):
  palette indices are class ids named by ``source_classes`` (default: the 21 VOC names);
  255 (VOC's border) is ignore.
- ``png``: a folder of single-channel PNGs of class ids; 255 is ignore.

Conventions (the same for every format):

- Matching: a tool item belongs to the sample whose image file has the same name
  without folders and extension (``images/00003.png`` <-> ``00003.png``,
  ``../images/00003.png``, ``C:\\x\\00003.jpg``). An item for an image that is not in
  the folder is an error; a sample without an item is reported and its mask is not
  written. An item with nothing drawn (no shapes; a mask of only the background label)
  is reported as ``empty`` and not written unless ``keep_empty``.
- Labels: a tool label maps to the folder class of the same name (manifest
  ``class_names``), unless ``mapping`` says otherwise (``{name: class name | class id |
  "ignore"}``); for ``png`` the labels are the ids themselves. Labels with no class are
  an error that lists them all.
- Unlabeled pixels (covered by no shape; in ``cvat-mask`` and ``voc`` the pixels of the
  label named ``background``, which is what those tools write where nothing was painted)
  become class 0 (``unlabeled="background"``, the default) or 255 (``"ignore"``).
- Overlaps: shapes are painted in file order, later wins.
- Polygons: a pixel is inside when its centre is; pixel (row r, column c) covers
  [c, c+1) x [r, r+1) in the tool's coordinates, so its centre is (c + 0.5, r + 0.5)
  (COCO's convention; pycocotools differs on some boundary pixels). Even-odd rule; a
  centre exactly on an edge counts for the edge on its left or top (shared edges of
  adjacent polygons give each pixel to exactly one of them). Several polygons of one
  COCO object are united. Circles: centres at distance <= radius.
- Sizes: an item has the size of the sample's image (or already the mask's size);
  anything else is an error. With a crop or smaller masks, shapes are rasterised in the
  mask's own pixel grid (coordinates mapped onto it) and raster masks are sampled at
  mask pixel centres (nearest).

Everything is read and checked first; then the masks are written (atomically, mode L)
and the folder is validated with :meth:`Annotations.load`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..conventions import IGNORE_INDEX, short_list
from ..fileio import read_json, resolve_inside, write_png
from .folder import Annotations
from .format import MANIFEST, AnnotationError, resolve_crop

logger = logging.getLogger(__name__)

__all__ = [
    "CROWD_MODES",
    "FORMATS",
    "UNLABELED_MODES",
    "VOC_CLASSES",
    "ImportReport",
    "MaskImportError",
    "SampleImport",
    "decode_rle",
    "import_masks",
    "rasterize_ellipse",
    "rasterize_polygon",
    "rle_counts_from_string",
    "voc_colormap",
]

FORMATS = ("coco", "labelme", "cvat-mask", "voc", "png")
UNLABELED_MODES = ("background", "ignore")
CROWD_MODES = ("class", "ignore")
#: Pascal VOC's class names, in the order of their ids (palette indices).
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
#: The label of raster exports (cvat-mask, voc) that marks pixels nobody painted.
BACKGROUND_LABEL = "background"
#: Most JSON files an import reads; far larger files are refused before parsing.
MAX_TOOL_JSON_BYTES = 512 * 2**20
#: Largest coordinate accepted in a shape (images are far smaller; keeps arithmetic exact).
MAX_COORDINATE = 1e7

Affine = tuple[float, float, float, float]  # (scale_y, scale_x, offset_y, offset_x)


class MaskImportError(ValueError):
    """Bad tool input; ``problems`` lists each, the message is one line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "; ".join(self.problems[:3])
        more = len(self.problems) - 3
        super().__init__(head + (f"; ... ({len(self.problems)} problems in all)" if more else ""))


# ------------------------------------------------------------------ rasterising
def rasterize_polygon(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside the polygon ``points`` (n, 2) of (x, y): bool (H, W).

    Even-odd rule; pixel (r, c) has its centre at (c + 0.5, r + 0.5). An edge counts for
    the rows whose centre y lies in [min y, max y) and a crossing at x turns on the
    centres at x or right of it, so centres on a left or top edge are inside, on a right
    or bottom edge outside.
    """
    pts = np.asarray(points, dtype=np.float64)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    yc = np.arange(height, dtype=np.float64)[:, None] + 0.5
    active = (yc >= np.minimum(y0, y1)) & (yc < np.maximum(y0, y1))
    dy = np.where(y1 == y0, 1.0, y1 - y0)
    xs = x0 + (yc - y0) / dy * (x1 - x0)
    start = np.clip(np.ceil(xs - 0.5), 0, width).astype(np.int64)
    rows = np.broadcast_to(np.arange(height)[:, None], xs.shape)
    toggles = np.zeros((height, width + 1), dtype=np.int64)
    np.add.at(toggles, (rows[active], start[active]), 1)
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


def decode_rle(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """A COCO run-length encoding (column-major, starting with 0s) as bool (H, W)."""
    runs = np.asarray(counts, dtype=np.int64)
    if runs.ndim != 1 or (runs < 0).any():
        raise ValueError("RLE counts must be non-negative integers")
    if int(runs.sum()) != height * width:
        raise ValueError(
            f"RLE counts add up to {int(runs.sum())} pixels, its size {height}x{width} "
            f"has {height * width}"
        )
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
    bitmap: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), bool))

    def region(self, out_hw: tuple[int, int], affine: Affine) -> np.ndarray:
        return _sample_raster(self.bitmap, out_hw, affine)


@dataclass
class _Item:
    """What a tool says about one image: shapes to paint, or a raster of label indices."""

    key: str  # the image's file name without folders and extension
    where: str  # file (and entry) for messages
    size: tuple[int, int] | None  # (height, width) the tool gives, None = unknown
    shapes: list[_Shape] = field(default_factory=list)
    raster: np.ndarray | None = None  # int label indices into ``names``, -1 = ignore
    names: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        """Label names this item uses."""
        if self.raster is None:
            return [s.label for s in self.shapes]
        used = np.unique(self.raster)
        return [self.names[i] for i in used if i >= 0]

    def is_empty(self) -> bool:
        if self.raster is None:
            return not self.shapes
        return all(name == BACKGROUND_LABEL for name in self.labels())


def _key_of(name: str) -> str:
    """A file name without folders (``/`` or ``\\``) and extension."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base[1:] else base


def _is_number(v: Any) -> bool:
    """A coordinate: a finite number of sane size."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    return ok and bool(np.isfinite(v)) and abs(v) <= MAX_COORDINATE


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
        problems.append(f"{where}: points must be a list of [x, y] finite numbers")
        return None
    return np.asarray(values, dtype=np.float64).reshape(-1, 2)


def _need_points(pts: np.ndarray, need: int, what: str, where: str, problems: list[str]) -> bool:
    if len(pts) < need:
        problems.append(f"{where}: a {what} needs at least {need} points, got {len(pts)}")
        return False
    return True


# ------------------------------------------------------------------ COCO
def _read_tool_json(path: Path) -> Any:
    try:
        return read_json(path, expect=object, max_bytes=MAX_TOOL_JSON_BYTES)
    except (OSError, ValueError) as err:
        raise MaskImportError([str(err)]) from None


def _coco_table(doc: dict, key: str, src: str, problems: list[str]) -> list[dict]:
    rows = doc.get(key)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        problems.append(f"{src}: '{key}' must be a list of objects (is this a COCO file?)")
        return []
    return rows


def _coco_images(images: list[dict], src: str, problems: list[str]) -> dict[Any, _Item]:
    items: dict[Any, _Item] = {}
    for i, img in enumerate(images):
        name, image_id = img.get("file_name"), img.get("id")
        where = f"{src}: images[{i}]"
        if not isinstance(name, str) or not name or not _is_id(image_id):
            problems.append(f"{where}: needs an 'id' (int or string) and a 'file_name'")
            continue
        if image_id in items:
            problems.append(f"{where}: duplicate image id {image_id!r}")
            continue
        h, w = img.get("height"), img.get("width")
        size = (h, w) if _is_count(h) and _is_count(w) and h and w else None
        items[image_id] = _Item(_key_of(name), f"{where} '{name}'", size)
    return items


def _coco_categories(cats: list[dict], src: str, problems: list[str]) -> dict[Any, str]:
    names: dict[Any, str] = {}
    for i, cat in enumerate(cats):
        name = cat.get("name")
        if not isinstance(name, str) or not name or not _is_id(cat.get("id")):
            problems.append(f"{src}: categories[{i}]: needs an 'id' and a non-empty 'name'")
        elif cat["id"] in names:
            problems.append(f"{src}: categories[{i}]: duplicate category id {cat['id']!r}")
        else:
            names[cat["id"]] = name
    return names


def _coco_rle(seg: dict, item: _Item, where: str, problems: list[str]) -> np.ndarray | None:
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_count(v) for v in size)):
        problems.append(f"{where}: RLE 'size' must be [height, width], got {size!r}")
        return None
    h, w = size
    if item.size is not None and item.size != (h, w):
        problems.append(
            f"{where}: RLE size {h}x{w} differs from its image's {item.size[0]}x{item.size[1]}"
        )
        return None
    try:
        if isinstance(counts, str):
            counts = rle_counts_from_string(counts)
        elif not (isinstance(counts, list) and all(_is_count(v) for v in counts)):
            raise ValueError("RLE 'counts' must be a string or a list of non-negative ints")
        bitmap = decode_rle(counts, h, w)
    except ValueError as err:
        problems.append(f"{where}: {err}")
        return None
    item.size = item.size or (h, w)
    return bitmap


def _coco_polygons(seg: list, where: str, problems: list[str]) -> list[np.ndarray] | None:
    polygons = []
    for j, flat in enumerate(seg):
        here = f"{where} segmentation[{j}]"
        if not isinstance(flat, list) or not all(_is_number(v) for v in flat) or len(flat) % 2:
            problems.append(f"{here}: a polygon is a flat list [x1, y1, x2, y2, ...] of numbers")
            return None
        pts = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        if not _need_points(pts, 3, "polygon", here, problems):
            return None
        polygons.append(pts)
    return polygons


def _coco_shape(
    ann: dict, k: int, items: dict, cats: dict, src: str, problems: list[str]
) -> tuple[_Item, _Shape] | None:
    where = f"{src}: annotations[{k}] (id {ann.get('id')!r})"
    if "segments_info" in ann:
        problems.append(
            f"{where}: COCO panoptic PNG annotations are not supported; export instance "
            "segmentation (polygons or RLE)"
        )
        return None
    image_id, category_id = ann.get("image_id"), ann.get("category_id")
    item = items.get(image_id) if _is_id(image_id) else None
    label = cats.get(category_id) if _is_id(category_id) else None
    if item is None or label is None:
        what = "image_id" if item is None else "category_id"
        problems.append(f"{where}: {what} {ann.get(what)!r} is not in the file")
        return None
    crowd = bool(ann.get("iscrowd", 0))
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        bitmap = _coco_rle(seg, item, where, problems)
        return None if bitmap is None else (item, _Bitmap(label, where, crowd, bitmap))
    if isinstance(seg, list) and seg:
        polygons = _coco_polygons(seg, where, problems)
        return None if polygons is None else (item, _Polygons(label, where, crowd, polygons))
    problems.append(f"{where}: no segmentation (a box-only annotation?); export masks or polygons")
    return None


def _read_coco(src: Path, **_: Any) -> list[_Item]:
    """Items of a COCO JSON file, one per entry of ``images``."""
    doc = _read_tool_json(src)
    name = src.name
    if not isinstance(doc, dict):
        raise MaskImportError([f"{name}: a COCO file holds a JSON object"])
    problems: list[str] = []
    items = _coco_images(_coco_table(doc, "images", name, problems), name, problems)
    cats = _coco_categories(_coco_table(doc, "categories", name, problems), name, problems)
    for k, ann in enumerate(_coco_table(doc, "annotations", name, problems)):
        found = _coco_shape(ann, k, items, cats, name, problems)
        if found is not None:
            found[0].shapes.append(found[1])
    if problems:
        raise MaskImportError(problems)
    return list(items.values())


# ------------------------------------------------------------------ LabelMe
def _labelme_shape(shape: Any, where: str, problems: list[str]) -> _Shape | None:
    if not isinstance(shape, dict):
        problems.append(f"{where}: must be an object")
        return None
    label, kind = shape.get("label"), shape.get("shape_type") or "polygon"
    if not isinstance(label, str) or not label:
        problems.append(f"{where}: 'label' must be a non-empty string")
        return None
    where = f"{where} '{label}'"
    pts = _points(shape.get("points"), where, problems)
    if pts is None:
        return None
    if kind == "polygon":
        ok = _need_points(pts, 3, "polygon", where, problems)
        return _Polygons(label, where, polygons=[pts]) if ok else None
    if kind in ("rectangle", "circle") and len(pts) != 2:
        problems.append(f"{where}: a {kind} has exactly 2 points, got {len(pts)}")
        return None
    if kind == "rectangle":
        (xa, ya), (xb, yb) = pts
        corners = np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]], dtype=np.float64)
        return _Polygons(label, where, polygons=[corners])
    if kind == "circle":
        radius = float(np.hypot(*(pts[1] - pts[0])))
        if radius <= 0:
            problems.append(f"{where}: a circle needs a radius > 0")
            return None
        return _Ellipse(label, where, centre=(float(pts[0][0]), float(pts[0][1])), radius=radius)
    problems.append(
        f"{where}: shape_type {kind!r} has no area (supported: polygon, rectangle, circle)"
    )
    return None


def _labelme_item(path: Path, problems: list[str]) -> _Item | None:
    doc = _read_tool_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        problems.append(f"{path.name}: not a LabelMe file (no 'shapes' list)")
        return None
    image_path = doc.get("imagePath")
    key = _key_of(image_path) if isinstance(image_path, str) and image_path else path.stem
    h, w = doc.get("imageHeight"), doc.get("imageWidth")
    size = (h, w) if _is_count(h) and _is_count(w) and h and w else None
    item = _Item(key, f"{path.name}: imagePath {image_path!r}", size)
    for i, shape in enumerate(doc["shapes"]):
        found = _labelme_shape(shape, f"{path.name}: shapes[{i}]", problems)
        if found is not None:
            item.shapes.append(found)
    return item


def _read_labelme(src: Path, **_: Any) -> list[_Item]:
    """Items of LabelMe JSON files: ``src`` is one file or a folder of them."""
    files = [src] if src.is_file() else sorted(src.glob("*.json"))
    if not files:
        raise MaskImportError([f"{src}: no LabelMe .json files"])
    problems: list[str] = []
    items = [_labelme_item(path, problems) for path in files]
    if problems:
        raise MaskImportError(problems)
    return [item for item in items if item is not None]


# ------------------------------------------------------------------ raster formats
def _png_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise MaskImportError([f"{folder}: no such folder ({what})"])
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise MaskImportError([f"{folder}: no .png files ({what})"])
    return files


def _open_mask_png(path: Path, where: str, problems: list[str]) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im.load()
            if im.format != "PNG":
                problems.append(f"{where}: is a {im.format} file, expected PNG")
                return None
            return im.copy()
    except Exception as err:  # PIL raises many types for damaged files
        problems.append(f"{where}: unreadable image ({type(err).__name__}: {err})")
        return None


def _raster_item(path: Path, where: str, raster: np.ndarray, names: list[str]) -> _Item:
    return _Item(path.stem, where, (int(raster.shape[0]), int(raster.shape[1])), [], raster, names)


def _parse_labelmap(path: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """``name:r,g,b:parts:actions`` lines of CVAT's ``labelmap.txt``."""
    entries, problems = [], []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MaskImportError([f"{path}: unreadable ({err})"]) from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.strip().partition(":")
        colour = rest.split(":", 1)[0].split(",")
        ok = len(colour) == 3 and all(c.strip().isdigit() and int(c) < 256 for c in colour)
        if not name or not ok:
            problems.append(f"{path.name}: line {n} {line.strip()!r} is not 'name:r,g,b::'")
            continue
        entries.append((name, tuple(int(c) for c in colour)))
    colours = [c for _, c in entries]
    dup = sorted({c for c in colours if colours.count(c) > 1})
    if dup:
        problems.append(f"{path.name}: colours used by more than one label: {short_list(dup)}")
    if problems:
        raise MaskImportError(problems)
    return entries


def _colour_labels(src: Path) -> tuple[list[str], dict[int, int]]:
    """Label names and {packed rgb: label index} from labelmap.txt, or VOC's colours."""
    labelmap = src / "labelmap.txt"
    if labelmap.is_file():
        entries = _parse_labelmap(labelmap)
    else:
        logger.info("%s: no labelmap.txt, reading Pascal VOC colours and names", src)
        entries = list(zip(VOC_CLASSES, voc_colormap(len(VOC_CLASSES))))
    names = [name for name, _ in entries]
    lookup = {(r << 16) | (g << 8) | b: i for i, (_, (r, g, b)) in enumerate(entries)}
    r, g, b = voc_colormap()[IGNORE_INDEX]  # VOC's border colour (224, 224, 192)
    lookup.setdefault((r << 16) | (g << 8) | b, -1)
    return names, lookup


def _read_cvat_mask(src: Path, **_: Any) -> list[_Item]:
    """Items of CVAT's Segmentation mask 1.1 export: colours -> labels via labelmap.txt."""
    names, lookup = _colour_labels(src)
    problems: list[str] = []
    items = []
    for path in _png_files(src / "SegmentationClass", "CVAT's SegmentationClass masks"):
        where = f"SegmentationClass/{path.name}"
        im = _open_mask_png(path, where, problems)
        if im is None:
            continue
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        colours, inverse = np.unique(packed, return_inverse=True)
        unknown = [c for c in colours.tolist() if c not in lookup]
        if unknown:
            shown = [(c >> 16, (c >> 8) & 255, c & 255) for c in unknown]
            problems.append(f"{where}: colours not in labelmap.txt: {short_list(shown, 5)}")
            continue
        index = np.array([lookup[c] for c in colours.tolist()], dtype=np.int64)
        items.append(_raster_item(path, where, index[inverse.reshape(packed.shape)], names))
    if problems:
        raise MaskImportError(problems)
    return items


def _index_masks(folder: Path, what: str, problems: list[str]) -> list[tuple[Path, np.ndarray]]:
    """(path, uint8 array) of single-channel PNGs (mode L, or P read as indices)."""
    out = []
    for path in _png_files(folder, what):
        im = _open_mask_png(path, path.name, problems)
        if im is None:
            continue
        if im.mode not in ("L", "P"):
            problems.append(
                f"{path.name}: mode {im.mode}, expected a single-channel PNG of ids (L or P); "
                "colour masks with a labelmap.txt are --format cvat-mask"
            )
            continue
        out.append((path, np.asarray(im)))
    return out


def _read_voc(src: Path, source_classes: Sequence[str] | None = None, **_: Any) -> list[_Item]:
    """Items of Pascal VOC palette masks: index i is ``source_classes[i]``, 255 ignore."""
    names = list(source_classes or VOC_CLASSES)
    folder = src / "SegmentationClass" if (src / "SegmentationClass").is_dir() else src
    problems: list[str] = []
    items = []
    for path, ids in _index_masks(folder, "VOC SegmentationClass masks", problems):
        labels = ids.astype(np.int64)
        labels[ids == IGNORE_INDEX] = -1
        bad = sorted({int(v) for v in np.unique(labels) if v >= len(names)})
        if bad:
            problems.append(
                f"{path.name}: indices {short_list(bad)} have no name ({len(names)} source "
                "classes; give them all with --source-classes)"
            )
            continue
        items.append(_raster_item(path, path.name, labels, names))
    if problems:
        raise MaskImportError(problems)
    return items


def _read_png(src: Path, **_: Any) -> list[_Item]:
    """Items of plain class-id PNGs: label names are the ids ("0", "1", ...), 255 ignore."""
    problems: list[str] = []
    names = [str(i) for i in range(IGNORE_INDEX)]
    items = []
    for path, ids in _index_masks(src, "class-id masks", problems):
        labels = ids.astype(np.int64)
        labels[ids == IGNORE_INDEX] = -1
        items.append(_raster_item(path, path.name, labels, names))
    if problems:
        raise MaskImportError(problems)
    return items


_READERS = {
    "coco": _read_coco,
    "labelme": _read_labelme,
    "cvat-mask": _read_cvat_mask,
    "voc": _read_voc,
    "png": _read_png,
}


# ------------------------------------------------------------------ the folder
@dataclass(frozen=True)
class _Sample:
    id: str
    key: str  # image file name without folders and extension
    mask_rel: str
    mask_path: Path
    image_rel: str | None
    image_path: Path | None
    image_hw: tuple[int, int] | None


@dataclass(frozen=True)
class _Folder:
    root: Path
    class_names: list[str]
    mask_hw: tuple[int, int]
    window: tuple[int, int, int, int] | None  # (top, left, height, width) in image pixels
    samples: list[_Sample]

    def affine(self, src_hw: tuple[int, int], sample: _Sample) -> Affine | None:
        """Tool coordinates -> mask pixels, for a source of ``src_hw``; None: wrong size."""
        if sample.image_hw is not None and src_hw == sample.image_hw:
            top, left, h, w = self.window or (0, 0, *sample.image_hw)
            return self.mask_hw[0] / h, self.mask_hw[1] / w, float(top), float(left)
        if src_hw == self.mask_hw:
            return 1.0, 1.0, 0.0, 0.0
        return None


def _hw(value: Any) -> tuple[int, int] | None:
    ok = isinstance(value, list) and len(value) == 2 and all(_is_count(v) and v for v in value)
    return (int(value[0]), int(value[1])) if ok else None


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return int(im.height), int(im.width)
    except Exception:  # a missing or broken image is Annotations.load's to report
        return None


def _folder_sample(
    root: Path, entry: Any, image_hw: tuple[int, int] | None, problems: list[str]
) -> _Sample | None:
    sample_id = entry.get("id") if isinstance(entry, dict) else None
    if not isinstance(sample_id, str) or not sample_id:
        problems.append(f"{MANIFEST}: a sample without an 'id': {entry!r:.60}")
        return None
    mask_rel = entry.get("mask") or f"masks/{sample_id}.png"
    image_rel, image_path = entry.get("image"), None
    try:
        mask_path = resolve_inside(root, mask_rel, f"sample '{sample_id}' mask")
        if image_rel is not None:
            image_path = resolve_inside(root, image_rel, f"sample '{sample_id}' image")
            image_hw = image_hw or _image_size(image_path)
    except ValueError as err:
        problems.append(f"{MANIFEST}: {err}")
        return None
    key = _key_of(image_rel) if isinstance(image_rel, str) else sample_id
    return _Sample(sample_id, key, mask_rel, mask_path, image_rel, image_path, image_hw)


def _mask_path_problems(samples: list[_Sample]) -> list[str]:
    """Mask paths that would overwrite something else: not .png, shared, an image."""
    problems = []
    protected = {s.image_path.resolve() for s in samples if s.image_path is not None}
    seen: set[Path] = set()
    for s in samples:
        target = s.mask_path.resolve()
        if s.mask_path.suffix.lower() != ".png" or target in protected or target in seen:
            problems.append(
                f"{MANIFEST}: sample '{s.id}' mask {s.mask_rel!r} is not a .png of its own"
            )
        seen.add(target)
    return problems


def _read_folder(root: Path) -> _Folder:
    """What the import needs from the manifest; refuses a folder it cannot fill."""
    try:
        manifest = read_json(root / MANIFEST)
    except (OSError, ValueError) as err:
        raise MaskImportError(
            [f"{err} (an annotation folder is made by `dgan-data sample`)"]
        ) from None
    names = manifest.get("class_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise MaskImportError(
            [
                f"{root / MANIFEST}: class_names is {names!r}: masks need the class names (give "
                "them when sampling, dgan-data sample --classes a,b,c, or write them there)"
            ]
        )
    mask_hw = _hw(manifest.get("mask_resolution"))
    problems: list[str] = []
    if mask_hw is None:
        problems.append(f"{MANIFEST}: mask_resolution must be [height, width]")
    window = None
    try:
        crop = manifest.get("crop")
        window = resolve_crop(crop) if crop is not None else None
    except ValueError as err:
        problems.append(f"{MANIFEST}: crop: {err}")
    entries = manifest.get("samples")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{MANIFEST}: samples must be a non-empty list")
        entries = []
    image_hw = _hw(manifest.get("image_resolution"))
    samples = [_folder_sample(root, e, image_hw, problems) for e in entries]
    problems += _mask_path_problems([s for s in samples if s is not None])
    keys = [s.key for s in samples if s is not None]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        problems.append(f"{MANIFEST}: several samples share the image name {short_list(dup)}")
    if problems:
        raise MaskImportError([f"{root}: {p}" for p in problems])
    return _Folder(root, list(names), mask_hw, window, [s for s in samples if s is not None])


# ------------------------------------------------------------------ labels
def _target(value: str | int, names: list[str], what: str) -> int:
    """A mapping target as a class id: class name, class id, or "ignore" (255)."""
    if isinstance(value, str) and value in names:
        return names.index(value)
    if value == "ignore":
        return IGNORE_INDEX
    text = str(value).strip()
    if not isinstance(value, bool) and text.isdigit():
        number = int(text)
        if number < len(names) or number == IGNORE_INDEX:
            return number
    raise MaskImportError(
        [
            f"{what}: {value!r} is not a class of {MANIFEST} (classes: {short_list(names)}; "
            f"a class id 0..{len(names) - 1}, or 'ignore' = {IGNORE_INDEX})"
        ]
    )


def _label_table(
    labels: Iterable[str],
    folder: _Folder,
    fmt: str,
    mapping: Mapping[str, str | int],
    unlabeled: int,
    src: Path,
) -> dict[str, int]:
    """Class id of every tool label used; an error lists every label without one."""
    names = folder.class_names
    targets = {str(k): _target(v, names, f"map {k}={v}") for k, v in mapping.items()}
    table, unknown = {}, []
    for label in sorted(set(labels)):
        if label in targets:
            table[label] = targets[label]
        elif fmt in ("cvat-mask", "voc") and label == BACKGROUND_LABEL:
            table[label] = unlabeled
        elif fmt == "png" and int(label) < len(names):
            table[label] = int(label)
        elif fmt != "png" and label in names:
            table[label] = names.index(label)
        else:
            unknown.append(label)
    unused = sorted(set(targets) - set(table))
    if unused:
        logger.warning("%s: --map names no label of the export: %s", src, short_list(unused))
    if unknown:
        raise MaskImportError([_unknown_labels(unknown, names, fmt, src)])
    return table


def _unknown_labels(unknown: list[str], names: list[str], fmt: str, src: Path) -> str:
    """The one-line message for tool labels without a class, listing them all."""
    if fmt == "png":
        what = f"ids (K = {len(names)}: 0..{len(names) - 1}, 255 = ignore)"
    else:
        what = f"labels (classes in {MANIFEST}: {short_list(names)})"
    listed = ", ".join(repr(u) for u in unknown)
    return (
        f"{src}: {len(unknown)} {what} without a class: {listed}; map them with "
        "--map NAME=CLASS (CLASS a class name, a class id or 'ignore')"
    )


# ------------------------------------------------------------------ painting
def _paint(
    item: _Item,
    table: dict[str, int],
    out_hw: tuple[int, int],
    affine: Affine,
    unlabeled: int,
    crowd_ignored: bool,
) -> np.ndarray:
    """The uint8 mask of one item in the folder's mask frame."""
    if item.raster is not None:
        lut = np.array([table.get(n, IGNORE_INDEX) for n in item.names] + [IGNORE_INDEX])
        # index -1 (ignore) picks the appended IGNORE_INDEX
        ids = lut[item.raster].astype(np.uint8)
        return _sample_raster(ids, out_hw, affine)
    mask = np.full(out_hw, unlabeled, dtype=np.uint8)
    for shape in item.shapes:
        value = IGNORE_INDEX if shape.crowd and crowd_ignored else table[shape.label]
        mask[shape.region(out_hw, affine)] = value
    return mask


# ------------------------------------------------------------------ the report
@dataclass(frozen=True)
class SampleImport:
    """What the import did for one sample of the folder.

    ``status``: "new", "replaced" or "unchanged" (a mask from the tool; with
    ``dry_run``, what would happen); "missing" (no item in the export and no mask
    file), "kept" (no item in the export, the existing mask file left as it is) or
    "empty" (an item with nothing drawn: not written unless ``keep_empty``).
    """

    id: str
    mask: str  # path relative to the folder
    status: str
    source: str | None = None  # the tool's file / entry
    objects: int = 0  # shapes painted, or labels present in a raster mask
    classes: tuple[str, ...] = ()  # class names present in the written mask
    ignored: float = 0.0  # fraction of pixels set to 255


@dataclass
class ImportReport:
    """Result of :func:`import_masks`: one :class:`SampleImport` per folder sample."""

    root: Path
    format: str
    source: Path
    samples: list[SampleImport]
    dry_run: bool = False
    validated: bool = False  # Annotations.load ran after writing
    problems: list[str] = field(default_factory=list)  # what Annotations.load found

    def ids(self, *statuses: str) -> list[str]:
        return [s.id for s in self.samples if s.status in statuses]

    @property
    def written(self) -> list[str]:
        """Samples whose mask file was (or, dry run, would be) created or replaced."""
        return self.ids("new", "replaced")

    @property
    def missing(self) -> list[str]:
        """Samples the export did not annotate (whether or not an old mask is kept)."""
        return self.ids("missing", "kept", "empty")

    @property
    def ok(self) -> bool:
        """True when the folder loads cleanly after the import (ready for fit)."""
        return self.validated and not self.problems


def _status(path: Path, mask: np.ndarray) -> str:
    if not path.exists():
        return "new"
    try:
        with Image.open(path) as im:
            old = np.asarray(im)
    except Exception:  # an unreadable old mask is simply replaced
        return "replaced"
    return "unchanged" if old.shape == mask.shape and np.array_equal(old, mask) else "replaced"


def _summary(sample: _Sample, item: _Item, mask: np.ndarray, names: list[str]) -> SampleImport:
    present = [names[v] for v in np.unique(mask) if v < len(names)]
    objects = len(item.shapes) if item.raster is None else len(item.labels())
    return SampleImport(
        sample.id,
        sample.mask_rel,
        _status(sample.mask_path, mask),
        item.where,
        objects,
        tuple(present),
        float((mask == IGNORE_INDEX).mean()),
    )


# ------------------------------------------------------------------ the import
def _check_options(
    fmt: str, unlabeled: str, crowd: str, source_classes: Sequence[str] | None
) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if unlabeled not in UNLABELED_MODES:
        raise ValueError(f"unlabeled must be one of {UNLABELED_MODES}, got {unlabeled!r}")
    if crowd not in CROWD_MODES:
        raise ValueError(f"crowd must be one of {CROWD_MODES}, got {crowd!r}")
    if fmt == "png" and unlabeled != "background":
        raise ValueError(
            "png masks hold explicit class ids, so unlabeled does not apply "
            "(map a value to 255 instead: --map 0=ignore)"
        )
    if source_classes is not None:
        if fmt != "voc":
            raise ValueError("source_classes (names of the palette indices) is for format voc")
        names = list(source_classes)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"source_classes must be non-empty names, got {names!r}")


def _match(items: list[_Item], folder: _Folder, src: Path) -> dict[str, _Item]:
    """Items by sample key; items for images not in the folder are an error."""
    keys = {s.key for s in folder.samples}
    by_key: dict[str, _Item] = {}
    problems = []
    for item in items:
        if item.key not in keys:
            problems.append(f"{item.where}: image '{item.key}' is not in {folder.root}")
        elif item.key in by_key:
            first = by_key[item.key].where
            problems.append(f"{item.where}: a second annotation of '{item.key}' (first: {first})")
        else:
            by_key[item.key] = item
    if problems:
        raise MaskImportError(problems)
    return by_key


def _affines(
    by_key: dict[str, _Item], folder: _Folder, keep_empty: bool
) -> dict[str, tuple[_Sample, _Item, Affine]]:
    """The transform of every item that will be written; wrong sizes are an error."""
    out, problems = {}, []
    for sample in folder.samples:
        item = by_key.get(sample.key)
        if item is None or (item.is_empty() and not keep_empty):
            continue
        size = item.size or sample.image_hw or folder.mask_hw
        affine = folder.affine(size, sample)
        if affine is None:
            problems.append(f"{item.where}: size {_size(size)} differs from {_expected(sample)}")
        else:
            out[sample.id] = (sample, item, affine)
    if problems:
        raise MaskImportError(problems)
    return out


def _size(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def _expected(sample: _Sample) -> str:
    """What a tool's image size must match, for messages."""
    if sample.image_hw is None:
        return "the mask size (the sample has no image)"
    return f"the image {sample.image_rel} ({_size(sample.image_hw)})"


def _validate(report: ImportReport) -> None:
    try:
        Annotations.load(report.root)
    except AnnotationError as err:
        report.problems = list(err.problems)
    except ValueError as err:
        report.problems = [str(err)]
    report.validated = True


def import_masks(
    src: str | os.PathLike,
    annotations_dir: str | os.PathLike,
    format: str,
    *,
    mapping: Mapping[str, str | int] | None = None,
    unlabeled: str = "background",
    crowd: str = "class",
    source_classes: Sequence[str] | None = None,
    keep_empty: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Fill ``annotations_dir/masks/<id>.png`` from an annotation tool's export ``src``.

    ``format``: one of :data:`FORMATS`; ``mapping``: tool label -> class name, class id or
    "ignore"; ``unlabeled``: "background" (class 0) or "ignore" (255) for pixels nobody
    labelled; ``crowd``: COCO ``iscrowd`` regions as their "class" or "ignore";
    ``source_classes``: names of VOC palette indices. Bad input raises
    :class:`MaskImportError` (a ValueError) before anything is written. See the module
    docstring for matching, rasterisation and overlap rules.
    """
    _check_options(format, unlabeled, crowd, source_classes)
    src, root = Path(src), Path(annotations_dir)
    if not src.exists():
        raise MaskImportError([f"{src}: no such file or folder"])
    folder = _read_folder(root)
    items = _READERS[format](src, source_classes=source_classes)
    by_key = _match(items, folder, src)
    todo = _affines(by_key, folder, keep_empty)
    unlabeled_id = 0 if unlabeled == "background" else IGNORE_INDEX
    labels = [label for _, item, _ in todo.values() for label in item.labels()]
    table = _label_table(labels, folder, format, mapping or {}, unlabeled_id, src)

    masks, samples = {}, []
    for sample in folder.samples:
        if sample.id not in todo:
            item = by_key.get(sample.key)
            status = "empty" if item is not None else "missing"
            if item is None and sample.mask_path.exists():
                status = "kept"
            where = None if item is None else item.where
            samples.append(SampleImport(sample.id, sample.mask_rel, status, where))
            continue
        _, item, affine = todo[sample.id]
        mask = _paint(item, table, folder.mask_hw, affine, unlabeled_id, crowd == "ignore")
        masks[sample.id] = (sample.mask_path, mask)
        samples.append(_summary(sample, item, mask, folder.class_names))
    report = ImportReport(root, format, src, samples, dry_run)
    if dry_run:
        return report
    for s in samples:
        if s.status in ("new", "replaced"):
            write_png(*masks[s.id], "L")
    logger.info("%s: wrote %d masks from %s", root, len(report.written), src)
    _validate(report)
    return report
