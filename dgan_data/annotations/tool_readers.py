"""Readers of annotation-tool exports: COCO, LabelMe, CVAT masks, Pascal VOC, PNG, and
colour masks in the annotation folder's palette.

Each reader takes the export's path and returns one :class:`~.shapes._Item` per image,
collecting every problem before raising :class:`~.shapes.MaskImportError` (see
:mod:`.tools` for the conventions all formats share).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..conventions import IGNORE_INDEX, check_distinct_colours, short_list
from ..fileio import read_json, read_small_file, why_not_a_file, why_not_a_folder
from .png import NOT_PNG_IMAGE_SUFFIXES, PNG_ONLY, open_png, written_as_class_ids
from .shapes import (
    MAX_COORDINATE,
    MaskImportError,
    _Bitmap,
    _Ellipse,
    _is_count,
    _is_id,
    _is_number,
    _Item,
    _key_of,
    _need_points,
    _points,
    _Polygons,
    _Shape,
    check_rle,
    rle_counts_from_string,
    voc_colormap,
)

logger = logging.getLogger(__name__)

_RLE = tuple[np.ndarray, tuple[int, int]]  # checked runs, (height, width)
#: ``check(key, (height, width))``: why a raster of that image and size cannot be used
#: (not in the annotation folder, another size), or None; asked before a PNG is decoded
RasterCheck = Callable[[str, tuple[int, int]], "str | None"]


def _size_check(check: RasterCheck | None, key: str) -> Callable[[tuple[int, int]], str | None]:
    return (lambda hw: check(key, hw)) if check is not None else (lambda hw: None)


__all__ = ["VOC_CLASSES"]

#: Pascal VOC's class names, in the order of their ids (palette indices).
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
#: Most JSON files an import reads; far larger files are refused before parsing.
MAX_TOOL_JSON_BYTES = 512 * 2**20


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


def _coco_rle(seg: dict, item: _Item, where: str, problems: list[str]) -> _RLE | None:
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
        runs = check_rle(counts, h, w)  # decoded when painted, one shape at a time
    except ValueError as err:
        problems.append(f"{where}: {err}")
        return None
    item.size = item.size or (h, w)
    return runs, (h, w)


def _coco_polygons(seg: list, where: str, problems: list[str]) -> list[np.ndarray] | None:
    polygons = []
    for j, flat in enumerate(seg):
        here = f"{where} segmentation[{j}]"
        if not isinstance(flat, list) or not all(_is_number(v) for v in flat) or len(flat) % 2:
            problems.append(
                f"{here}: a polygon is a flat list [x1, y1, x2, y2, ...] of an even count of "
                f"numbers within +-{MAX_COORDINATE:,.0f}"
            )
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
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):  # "0" would read as a crowd
        problems.append(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r:.40}")
        return None
    crowd = bool(crowd)
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        rle = _coco_rle(seg, item, where, problems)
        return None if rle is None else (item, _Bitmap(label, where, crowd, *rle))
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
        why = why_not_a_folder(folder) if os.path.lexists(folder) else "no such folder"
        raise MaskImportError([f"{folder}: {why} ({what})"])
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    unreadable = [f"{p.name} {why}" for p in files if (why := why_not_a_file(p)) is not None]
    if unreadable:  # a mask behind a link to nothing is not skipped without a word
        raise MaskImportError([f"{folder}/{entry} ({what})" for entry in unreadable])
    others = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in NOT_PNG_IMAGE_SUFFIXES)
    if not files:
        found = f"; found {short_list(others)}: {PNG_ONLY}" if others else ""
        raise MaskImportError([f"{folder}: no .png files ({what}){found}"])
    if others:  # never dropped without a word: their samples would stay unannotated
        logger.warning("%s: %s left out: %s", folder, short_list(others), PNG_ONLY)
    return files


def _raster_item(
    path: Path, where: str, raster: np.ndarray, names: list[str], painted: bool = False
) -> _Item:
    size = (int(raster.shape[0]), int(raster.shape[1]))
    return _Item(path.stem, where, size, [], raster, names, painted=painted)


def _parse_labelmap(path: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """``name:r,g,b:parts:actions`` lines of CVAT's ``labelmap.txt``."""
    entries, problems = [], []
    try:
        text = read_small_file(path, MAX_TOOL_JSON_BYTES, "labelmap.txt").decode("utf-8-sig")
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise MaskImportError([f"{path}: unreadable ({err})"]) from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.strip().partition(":")
        colour = rest.split(":", 1)[0].split(",")
        ok = len(colour) == 3 and all(c.strip().isdecimal() and int(c) < 256 for c in colour)
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


#: The colour of ignored pixels in colour masks, unless a label uses it: Pascal VOC's
#: border colour (224, 224, 192).
IGNORE_COLOUR = tuple(int(c) for c in voc_colormap()[IGNORE_INDEX])


def _colour_lookup(colours: Sequence[Sequence[int]]) -> dict[int, int]:
    """{packed rgb: index} of label colours (``(r << 16) | (g << 8) | b``, as
    :func:`_colour_raster` packs pixels), with :data:`IGNORE_COLOUR` as -1 (ignore)
    unless a label uses it."""
    lookup = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(colours)}
    r, g, b = IGNORE_COLOUR
    lookup.setdefault((r << 16) | (g << 8) | b, -1)
    return lookup


def _colour_labels(src: Path) -> tuple[list[str], dict[int, int]]:
    """Label names and {packed rgb: label index} from labelmap.txt, or VOC's colours."""
    labelmap = src / "labelmap.txt"
    if labelmap.is_file():
        entries = _parse_labelmap(labelmap)
    elif os.path.lexists(labelmap):  # a link to nothing or a pipe: VOC colours would mislabel
        raise MaskImportError([f"labelmap.txt {why_not_a_file(labelmap)}, not the label map"])
    else:
        logger.info("%s: no labelmap.txt, reading Pascal VOC colours and names", src)
        entries = list(zip(VOC_CLASSES, voc_colormap(len(VOC_CLASSES))))
    return [name for name, _ in entries], _colour_lookup([colour for _, colour in entries])


def _read_cvat_mask(src: Path, check: RasterCheck | None = None, **_: Any) -> list[_Item]:
    """Items of CVAT's Segmentation mask 1.1 export: colours -> labels via labelmap.txt."""
    names, lookup = _colour_labels(src)
    palette = (
        "labelmap.txt"
        if (src / "labelmap.txt").is_file()
        else "the Pascal VOC palette (no labelmap.txt in the export)"
    )
    problems: list[str] = []
    items = []
    for path in _png_files(src / "SegmentationClass", "CVAT's SegmentationClass masks"):
        where = f"SegmentationClass/{path.name}"
        raster = _colour_raster(path, where, lookup, palette, problems, check)
        if raster is not None:
            items.append(_raster_item(path, where, raster, names))
    if problems:
        raise MaskImportError(problems)
    return items


#: Largest channel difference from a palette colour read as a softened edge (antialiasing,
#: JPEG) rather than a colour of another palette.
_NEAR_PALETTE = 48


def _unpack(colours: Sequence[int]) -> np.ndarray:
    packed = np.asarray(colours, dtype=np.int64)[:, None]
    return np.concatenate([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1)


def _off_palette_hint(
    unknown: Sequence[int], pixels: np.ndarray, palette: Sequence[int], total: int
) -> str:
    """Why a mask has colours outside its palette: near palette colours (edges softened
    by antialiasing, or a lossy format) or far from all of them (another palette).
    ``unknown``, ``palette``: packed rgb; ``pixels``: pixel count of each unknown colour."""
    off = int(pixels.sum())
    share = f"{off} of {total} pixels ({100 * off / total:.1f} %)"
    if not palette:
        return share
    gap = np.abs(_unpack(unknown)[:, None, :] - _unpack(palette)[None, :, :]).max(2).min(1)
    if pixels[gap <= _NEAR_PALETTE].sum() * 2 >= off:
        return (
            f"{share}, mostly near a palette colour: softened by antialiasing or a lossy "
            "format (JPEG); paint with a hard-edged pencil without antialiasing and save as "
            "PNG"
        )
    return f"{share}, mostly far from every palette colour: paint with the palette's colours"


def _colour_raster(
    path: Path,
    where: str,
    lookup: dict[int, int],
    palette: str,
    problems: list[str],
    check: RasterCheck | None,
    class_ids: int | None = None,
) -> np.ndarray | None:
    """A colour mask PNG as label indices (``lookup``: packed rgb -> index, -1 ignore),
    or None with its problem recorded (``palette`` names the colours for messages).

    A single-channel PNG holds no colours: with ``class_ids`` (the number of classes) one
    whose values are all class ids or 255 is read as ids (a mask an earlier import
    wrote: converting its grey levels as colours relabelled 255 as a white class); any
    other is refused."""
    im = open_png(path, where, problems, _size_check(check, path.stem))
    if im is None:
        return None
    if im.mode in _SINGLE_CHANNEL_MODES:  # ids; a mask dgan_data wrote is never colours
        colours = None if written_as_class_ids(im) else lookup
        return _id_raster(np.asarray(im), where, palette, class_ids, problems, colours)
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        # the RGB of a see-through pixel is whatever the editor left there (GIMP,
        # Krita): converting to RGB labelled it silently
        rgba = np.asarray(im.convert("RGBA"))
        see_through = int((rgba[..., 3] < 255).sum())
        if see_through:
            problems.append(
                f"{where}: {see_through} pixels are not fully opaque: their label is "
                "unknown; fill them with a label colour and save without transparency"
            )
            return None
        rgb = rgba[..., :3].astype(np.int64)
    else:
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    off = np.array([c not in lookup for c in colours.tolist()], dtype=bool)
    if off.any():
        unknown = colours[off].tolist()
        shown = [(c >> 16, (c >> 8) & 255, c & 255) for c in unknown]
        pixels = np.bincount(inverse.ravel(), minlength=len(colours))[off]
        problems.append(
            f"{where}: colours not in {palette}: {short_list(shown, 5)}; "
            f"{_off_palette_hint(unknown, pixels, list(lookup), packed.size)}"
        )
        return None
    index = np.array([lookup[c] for c in colours.tolist()], dtype=np.int64)
    return index[inverse.reshape(packed.shape)]


def _grey_colour_clash(greys: list[int], lookup: dict[int, int]) -> tuple[int, int] | None:
    """(grey, its label as a colour) when every grey level v is the palette colour
    (v, v, v) and one reads otherwise as a colour than as an id; None otherwise."""
    as_colour = {v: lookup.get((v << 16) | (v << 8) | v) for v in greys}
    if any(label is None for label in as_colour.values()):
        return None  # not all colours of the palette: ids, as an earlier import wrote
    for v, label in as_colour.items():
        if label != (-1 if v == IGNORE_INDEX else v):
            return v, label
    return None


#: PNG modes with one channel: grey levels or ids, never colours. A 1-bit image ("1")
#: is not among them: its pixels are black and white, read as those colours (as ids
#: 0/1 they labelled a white class as class 1).
_SINGLE_CHANNEL_MODES = ("L", "I", "I;16")


def _id_raster(
    values: np.ndarray,
    where: str,
    palette: str,
    class_ids: int | None,
    problems: list[str],
    lookup: dict[int, int] | None = None,
) -> np.ndarray | None:
    """A single-channel mask met where colours are read: its ids as label indices when
    ``class_ids`` allows them, else None with the problem recorded. A grey mask that
    reads as colours of the palette (``lookup``) too, with other labels, is refused: a
    black and white mask saved as greyscale made white 255 = ignore."""
    values = values.astype(np.int64)
    found = ""
    if class_ids is not None:
        bad = np.unique(values[(values >= class_ids) & (values != IGNORE_INDEX)])
        if bad.size == 0:
            clash = _grey_colour_clash(np.unique(values).tolist(), lookup or {})
            if clash is None:
                return np.where(values == IGNORE_INDEX, -1, values)
            grey, as_colour = clash
            as_id = "ignore" if grey == IGNORE_INDEX else f"class {grey}"
            colour_label = "ignore" if as_colour == -1 else f"class {as_colour}"
            problems.append(
                f"{where}: a greyscale mask whose grey levels are all colours of {palette}: "
                f"grey {grey} reads as {as_id} (a class id) or as {colour_label} (a "
                "colour); save the painted mask as RGB, or import masks of class ids with "
                "--format png"
            )
            return None
        found = f" with values {short_list(bad.tolist(), 5)} that are no class ids"
    problems.append(
        f"{where}: a single-channel image{found}, not a colour mask: colours are read by "
        f"{palette}; save the painted mask as RGB, or import masks of class ids with "
        "--format png"
    )
    return None


def _read_palette(
    src: Path,
    check: RasterCheck | None = None,
    folder_classes: Sequence[str] | None = None,
    folder_palette: Sequence[Sequence[int]] | None = None,
    **_: Any,
) -> list[_Item]:
    """Items of colour masks painted with the annotation folder's own palette (its
    manifest's ``palette``): colour i is class i, :data:`IGNORE_COLOUR` is ignore."""
    if not folder_classes or not folder_palette:
        raise MaskImportError(
            [
                "--format palette reads colours by the annotation folder's palette, and the "
                "palette of its manifest.json is not a list of one [r, g, b] (0..255) per "
                "class: correct it, or export the colours with a labelmap.txt and use "
                "--format cvat-mask"
            ]
        )
    colours = [tuple(int(v) for v in c) for c in folder_palette]
    try:
        check_distinct_colours(colours, "manifest.json: palette", folder_classes)
    except ValueError as err:
        raise MaskImportError([str(err)]) from None
    lookup = _colour_lookup(colours)
    names = list(folder_classes)
    problems: list[str] = []
    items = []
    for path in _png_files(src, "colour masks in the folder's palette"):
        raster = _colour_raster(
            path, path.name, lookup, "the folder's palette", problems, check, len(names)
        )
        if raster is not None:
            items.append(_raster_item(path, path.name, raster, names, painted=True))
    if problems:
        raise MaskImportError(problems)
    return items


def _index_masks(
    folder: Path, what: str, problems: list[str], check: RasterCheck | None = None
) -> list[tuple[Path, np.ndarray]]:
    """(path, uint8 array) of single-channel PNGs (mode L, or P read as indices); with
    ``check``, a file it refuses is reported without being decoded."""
    out = []
    for path in _png_files(folder, what):
        im = open_png(path, path.name, problems, _size_check(check, path.stem))
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


def _read_voc(
    src: Path,
    source_classes: Sequence[str] | None = None,
    check: RasterCheck | None = None,
    **_: Any,
) -> list[_Item]:
    """Items of Pascal VOC palette masks: index i is ``source_classes[i]``, 255 ignore."""
    names = list(source_classes or VOC_CLASSES)
    folder = src / "SegmentationClass" if (src / "SegmentationClass").is_dir() else src
    problems: list[str] = []
    items = []
    for path, ids in _index_masks(folder, "VOC SegmentationClass masks", problems, check):
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


def _read_png(
    src: Path,
    check: RasterCheck | None = None,
    mapped: Collection[str] = (),
    **_: Any,
) -> list[_Item]:
    """Items of plain class-id PNGs: label names are the ids ("0", "1", ...), 255 ignore
    unless ``mapped`` (the labels that ``--map`` names) holds "255"."""
    problems: list[str] = []
    keep_255 = str(IGNORE_INDEX) in mapped  # --map 255=skin: the value is a label too
    names = [str(i) for i in range(IGNORE_INDEX + keep_255)]
    items = []
    for path, ids in _index_masks(src, "class-id masks", problems, check):
        labels = ids.astype(np.int64)
        if not keep_255:
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
    "palette": _read_palette,
}
