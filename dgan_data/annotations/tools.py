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
- ``palette``: a folder of colour PNGs painted with the annotation folder's own palette
  (manifest ``palette``): colour i is class i; (224, 224, 192), VOC's border colour, is
  ignore unless a class uses it.

Conventions (the same for every format):

- Matching: a tool item belongs to the sample whose image file has the same name
  without folders and extension (``images/00003.png`` <-> ``00003.png``,
  ``../images/00003.png``, ``C:\\x\\00003.jpg``). An item for an image that is not in
  the folder is an error; a sample without an item is reported and its mask is not
  written. An item with nothing drawn (no shapes; a mask of only the background label,
  which is what ``cvat-mask`` and ``voc`` export for an image nobody labelled) is
  reported as ``empty`` and not written unless ``keep_empty``; a ``palette`` mask is
  painted by hand, so one of only background is a drawn mask and is written.
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

import difflib
import logging
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..conventions import (
    IGNORE_INDEX,
    check_bool,
    did_you_mean,
    keyword_hints,
    short_list,
    with_hint,
)
from ..fileio import read_json, resolve_inside, why_not_a_file, write_png
from .files import manifest_palette
from .folder import Annotations
from .format import MANIFEST, AnnotationError, resolve_crop
from .png import CLASS_ID_MASK_TEXT
from .shapes import (
    BACKGROUND_LABEL,
    Affine,
    MaskImportError,
    _is_count,
    _Item,
    _key_of,
    _sample_raster,
    decode_rle,
    rasterize_ellipse,
    rasterize_polygon,
    rle_counts_from_string,
    voc_colormap,
)
from .tool_readers import _READERS, VOC_CLASSES

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
    "manifest_palette",
    "rasterize_ellipse",
    "rasterize_polygon",
    "rle_counts_from_string",
    "voc_colormap",
]

FORMATS = ("coco", "labelme", "cvat-mask", "voc", "png", "palette")
UNLABELED_MODES = ("background", "ignore")
CROWD_MODES = ("class", "ignore")


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
    palette: list[tuple[int, int, int]] | None = None  # the manifest's, when well formed

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


#: Formats whose source is a folder, and what it holds.
_FOLDER_FORMATS = {
    "cvat-mask": "CVAT's 'Segmentation mask' export",
    "voc": "VOC's SegmentationClass masks",
    "png": "class-id mask PNGs",
    "palette": "colour mask PNGs in the annotation folder's palette",
}


def _read_folder(root: Path) -> _Folder:
    """What the import needs from the manifest; refuses a folder it cannot fill."""
    if not root.is_dir():  # not [Errno 20] about root/manifest.json
        what = "is a file, not a folder" if root.exists() else "no such folder"
        raise MaskImportError(
            [f"{root}: {what} (an annotation folder is made by `dgan-data sample`)"]
        )
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
        problems.append(
            f"{MANIFEST}: mask_resolution must be [height, width] of ints >= 1, got "
            f"{manifest.get('mask_resolution')!r}"
        )
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
    kept = [s for s in samples if s is not None]
    return _Folder(root, list(names), mask_hw, window, kept, manifest_palette(manifest, len(names)))


# ------------------------------------------------------------------ labels
def _target(value: str | int, names: list[str], what: str) -> int:
    """A mapping target as a class id: class name, class id, or "ignore" (255)."""
    if isinstance(value, str) and value in names:
        return names.index(value)
    if value == "ignore":
        return IGNORE_INDEX
    text = str(value).strip()
    if not isinstance(value, bool) and text.isdecimal():
        number = int(text)
        if number < len(names) or number == IGNORE_INDEX:
            return number
    raise MaskImportError(
        [
            with_hint(
                f"{what}: {value!r} is not a class of {MANIFEST} (classes: {short_list(names)}; "
                f"a class id 0..{len(names) - 1}, or 'ignore' = {IGNORE_INDEX})",
                did_you_mean(str(value), names),
            )
        ]
    )


def _label_table(
    labels: Mapping[str, str],
    folder: _Folder,
    fmt: str,
    mapping: Mapping[str, str | int],
    unlabeled: int,
    src: Path,
) -> dict[str, int]:
    """Class id of every tool label used (``labels``: label -> the first item using it);
    an error lists every label without one, with where it is first used."""
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
        raise MaskImportError([_unknown_labels(unknown, names, fmt, src, labels)])
    return table


def _unknown_labels(
    unknown: list[str], names: list[str], fmt: str, src: Path, first_use: Mapping[str, str]
) -> str:
    """The one-line message for tool labels without a class, listing them all."""
    if fmt == "png":
        what = f"ids (K = {len(names)}: 0..{len(names) - 1}, 255 = ignore)"
    else:
        what = f"labels (classes in {MANIFEST}: {short_list(names)})"
    listed = ", ".join(f"{u!r} (in {first_use[u]})" for u in unknown)
    text = (
        f"{src}: {len(unknown)} {what} without a class: {listed}; map them with "
        "--map NAME=CLASS (CLASS a class name, a class id or 'ignore')"
    )
    if fmt == "png":
        return text
    # a label spelt unlike its class ("Hair", "eye-white"): the maps that would do
    close = {u: _closest_class(u, names) for u in unknown}
    maps = " ".join(f"--map {shlex.quote(f'{u}={c}')}" for u, c in close.items() if c is not None)
    return with_hint(text, f" Did you mean {maps}?" if maps else "")


def _closest_class(label: str, names: Sequence[str]) -> str | None:
    """The class whose name is closest to a tool label, case and separators aside, or None."""

    def key(text: str) -> str:
        return text.lower().replace("-", "_").replace(" ", "_")

    by_key = {key(n): n for n in names}
    found = difflib.get_close_matches(key(label), list(by_key), n=1, cutoff=0.75)
    return by_key[found[0]] if found else None


# ------------------------------------------------------------------ painting
def _paint(
    item: _Item,
    table: dict[str, int],
    out_hw: tuple[int, int],
    affine: Affine,
    unlabeled: int,
    crowd_ignored: bool,
) -> tuple[np.ndarray, int]:
    """The uint8 mask of one item in the folder's mask frame, and how many of its shapes
    cover no pixel of it (drawn outside the image, or too small for the mask grid)."""
    if item.raster is not None:
        lut = np.array([table.get(n, IGNORE_INDEX) for n in item.names] + [IGNORE_INDEX])
        # index -1 (ignore) picks the appended IGNORE_INDEX
        ids = lut[item.raster].astype(np.uint8)
        return _sample_raster(ids, out_hw, affine), 0
    mask = np.full(out_hw, unlabeled, dtype=np.uint8)
    empty = 0
    for shape in item.shapes:
        value = IGNORE_INDEX if shape.crowd and crowd_ignored else table[shape.label]
        region = shape.region(out_hw, affine)
        empty += not region.any()
        mask[region] = value
    return mask, empty


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
    empty_objects: int = 0  # shapes that cover no pixel of the mask (outside the image?)


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


def _summary(
    sample: _Sample, item: _Item, mask: np.ndarray, names: list[str], empty: int
) -> SampleImport:
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
        empty,
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


def _png_map_keys(mapping: Mapping[str, str | int]) -> dict[str, str | int]:
    """``mapping`` with png's labels (class ids) written as the reader names them:
    ``--map 01=hair`` maps id 1 (it matched no label). Two keys for one id are an error."""
    out: dict[str, str | int] = {}
    given: dict[str, str] = {}
    for key, target in mapping.items():
        text = str(key).strip()
        label = str(int(text)) if text.isdecimal() and text.isascii() else str(key)
        if label in out:
            raise ValueError(
                f"--map {given[label]} and --map {key} name the same png id {label}; give it once"
            )
        out[label], given[label] = target, str(key)
    return out


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


def _raster_check(folder: _Folder) -> Callable[[str, tuple[int, int]], str | None]:
    """What raster readers ask before decoding a PNG: the problem ``_match`` or
    ``_affines`` would report for an image of that name and size, or None. A folder of
    large or unrelated PNGs is refused from the headers, not after decoding every file."""
    samples = {s.key: s for s in folder.samples}

    def check(key: str, hw: tuple[int, int]) -> str | None:
        sample = samples.get(key)
        if sample is None:
            return f"image '{key}' is not in {folder.root}"
        if folder.affine(hw, sample) is None:
            return f"size {_size(hw)} differs from {_expected(sample)}"
        return None

    return check


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
        report.problems = list(err.problems) + ([err.advice] if err.advice else [])
    except ValueError as err:
        report.problems = [str(err)]
    report.validated = True


@keyword_hints
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
    if format == "png":
        mapping = _png_map_keys(mapping or {})
    keep_empty, dry_run = check_bool(keep_empty, "keep_empty"), check_bool(dry_run, "dry_run")
    src, root = Path(src), Path(annotations_dir)
    if not src.exists():  # a link whose target is gone is there, and named as such
        why = why_not_a_file(src) if os.path.lexists(src) else "no such file or folder"
        raise MaskImportError([f"{src}: {why}"])
    if format == "coco" and src.is_dir():  # not a raw [Errno 21] from open()
        raise MaskImportError([f"{src}: is a folder; --format coco reads one COCO JSON file"])
    if format in _FOLDER_FORMATS and not src.is_dir():
        raise MaskImportError(
            [f"{src}: is a file; --format {format} reads a folder ({_FOLDER_FORMATS[format]})"]
        )
    folder = _read_folder(root)
    items = _READERS[format](
        src,
        source_classes=source_classes,
        check=_raster_check(folder),
        folder_classes=folder.class_names,
        folder_palette=folder.palette,
        mapped={str(k) for k in mapping or {}},
    )
    by_key = _match(items, folder, src)
    todo = _affines(by_key, folder, keep_empty)
    unlabeled_id = 0 if unlabeled == "background" else IGNORE_INDEX
    first_use: dict[str, str] = {}  # label -> the first item that uses it, for messages
    for _, item, _ in todo.values():
        for label in item.labels():
            first_use.setdefault(label, item.where)
    table = _label_table(first_use, folder, format, mapping or {}, unlabeled_id, src)

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
        mask, empty = _paint(item, table, folder.mask_hw, affine, unlabeled_id, crowd == "ignore")
        if empty:
            logger.warning(
                "%s: %d of %d objects cover no pixel of the %dx%d mask (drawn outside the "
                "image?)", item.where, empty, len(item.shapes), *folder.mask_hw
            )  # fmt: skip
        masks[sample.id] = (sample.mask_path, mask)
        samples.append(_summary(sample, item, mask, folder.class_names, empty))
    report = ImportReport(root, format, src, samples, dry_run)
    blocked = [
        f"{masks[s.id][0]}: exists and is not a file"
        for s in samples
        if s.status in ("new", "replaced")
        and masks[s.id][0].exists()
        and not masks[s.id][0].is_file()
    ]
    if blocked:  # checked before the first write, so a refused import writes nothing
        raise MaskImportError(blocked)
    if dry_run:
        return report
    for s in samples:
        if s.status in ("new", "replaced"):
            write_png(*masks[s.id], "L", text=CLASS_ID_MASK_TEXT)
    logger.info("%s: wrote %d masks from %s", root, len(report.written), src)
    _validate(report)
    return report
