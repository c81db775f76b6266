"""Folders of real labeled images: the test sets that DatasetGAN results are scored on.

Layout::

    DIR/
      images/<name>.png | .jpg | .jpeg   the photo (RGB; grayscale, palette and RGBA
                                         are converted to RGB, alpha dropped)
      masks/<name>.png                   single-channel 8-bit PNG (mode L, or P whose
                                         indices are the class ids): one class id per
                                         pixel, 0..K-1, 255 = ignore; same size as the image
      classes.json                       optional: ["background", "wall", ...], class
                                         names in id order (K = its length)

Images and masks are matched by file stem (``images/0001.jpg`` <-> ``masks/0001.png``;
extensions in any case, stems compared after Unicode NFC normalisation, so names copied
from macOS match) and listed in sorted stem order, the order fold indices refer to.
Hidden files (".*", e.g. ``.DS_Store``) are skipped; any other entry is either part of
a pair or an error (subfolders are not searched). Symlinks are followed, also to files
outside the folder (nothing is ever written there).

:class:`LabeledFolder` checks the whole folder when it is created (every image has a
mask and vice versa, every image and mask decodes completely, masks are single-channel,
sizes agree, class ids are valid, no image carries an EXIF orientation that viewers
would apply but the pixels do not) and reports all problems at once, naming the files.
:func:`write_labeled_folder` writes the layout, each file atomically (temp file +
``os.replace``).
"""

from __future__ import annotations

import json
import logging
import operator
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..conventions import (
    IGNORE_INDEX,
    MAX_CLASSES,
    check_class_names,
    check_index,
    keyword_hints,
    short_list,
    with_hint,
)
from ..fileio import (
    atomic_write,
    close_names,
    make_folder,
    nonempty_path,
    parse_json_text,
    read_small_file,
    why_not_a_file,
    why_not_a_folder,
)

__all__ = ["LabeledFolder", "LabeledFolderError", "write_labeled_folder"]

logger = logging.getLogger(__name__)

IMAGE_DIR, MASK_DIR, CLASSES_FILE = "images", "masks", "classes.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Largest classes.json read (254 names fit in far less): a bigger file is refused unread.
MAX_CLASSES_JSON_BYTES = 2**20
MASK_SUFFIX = ".png"
_IMAGE_MODES = ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr")
_ORIENTATION_TAG = 0x0112  # EXIF Orientation; 1 = as stored
_ORIENTATIONS = {
    2: "mirrored",
    3: "rotated 180 degrees",
    4: "mirrored",
    5: "rotated 90 degrees and mirrored",
    6: "rotated 90 degrees clockwise",
    7: "rotated 90 degrees and mirrored",
    8: "rotated 90 degrees counter-clockwise",
}
_MASK_RULE = "mask must be a single-channel 8-bit PNG (mode L, or P with class ids as indices)"


class LabeledFolderError(ValueError):
    """Problems found in a labeled folder; ``problems`` lists each one, naming its file."""

    def __init__(self, problems: Sequence[str], where: str | os.PathLike | None = None) -> None:
        self.problems = list(problems)
        self.where = str(where) if where is not None else None
        n = len(self.problems)
        head = f"{self.where}: " if self.where else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{head}{n} problem{'s' if n != 1 else ''} with the labeled folder:\n{lines}"
        )


def _as_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be an int or (height, width) of positive ints, got {size!r}")
    return hw  # type: ignore[return-value]


def _as_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    try:
        if isinstance(num_classes, bool):
            raise TypeError
        k = operator.index(num_classes)  # 2.5 or "3" would blur the range check
    except TypeError:
        raise ValueError(f"num_classes must be an int, got {num_classes!r}") from None
    if not 1 <= k <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes}")
    return k


def _list_files(folder: Path, problems: list[str], rel: str) -> list[Path]:
    if not folder.is_dir():
        why = why_not_a_folder(folder) if os.path.lexists(folder) else "missing folder"
        problems.append(f"{rel}/: {why}")
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _entry_problem(path: Path) -> str | None:
    """Why an entry of images/ or masks/ cannot be part of a pair (not its type)."""
    why = why_not_a_file(path)  # symlinks are followed
    if why is not None and path.is_dir():
        why += (
            f": subfolders are not searched, put the files directly in {IMAGE_DIR}/ and {MASK_DIR}/"
        )
    return why


def _key(path: Path) -> str:
    """The stem images and masks are matched by: NFC, so a name that macOS stored
    decomposed (e + combining accent) matches the same name typed elsewhere."""
    return unicodedata.normalize("NFC", path.stem)


def _read_classes(root: Path, problems: list[str]) -> list[str] | None:
    path = root / CLASSES_FILE
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        problems.append(f"{CLASSES_FILE}: {why_not_a_file(path)}, not a JSON file of class names")
        return None
    try:
        # a BOM is harmless; nesting too deep is a ValueError like bad JSON
        text = read_small_file(path, MAX_CLASSES_JSON_BYTES, "classes.json").decode("utf-8-sig")
        names = parse_json_text(text, CLASSES_FILE)
    except (OSError, ValueError) as err:
        problems.append(f"{CLASSES_FILE}: unreadable ({err})")
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append(
            f"{CLASSES_FILE}: expected a non-empty JSON list of class names (non-empty "
            f"strings, in id order), got {json.dumps(names)[:80]}"
        )
        return None
    try:  # the rule of every class list: 1..254 distinct, non-blank strings
        return check_class_names(names, f"{CLASSES_FILE}: class names")
    except ValueError as err:
        problems.append(str(err))
        return None


def _mask_mode_problem(mode: str, mask: np.ndarray) -> str:
    """Why a decoded mask of another mode than L / P is refused, with the fix."""
    got = f"{_MASK_RULE}, got mode {mode} with shape {mask.shape}"
    if mode in ("RGB", "RGBA") and mask.ndim == 3:
        rgb = mask[..., :3].astype(np.uint32)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return (
                f"{got}: its colour channels are equal (a grey mask saved as colour): save "
                "it single-channel, e.g. Image.open(f).convert('L').save(f)"
            )
        colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).size
        return (
            f"{got}: a colour-coded mask ({colours} colours): map each colour to its class "
            "id and save the ids single-channel"
        )
    if mode == "LA":
        return f"{got}: drop the alpha channel, e.g. Image.open(f).convert('L').save(f)"
    if mode.startswith("I"):
        return (
            f"{got}: a {16 if ';16' in mode else 32}-bit mask with values "
            f"{int(mask.min())}..{int(mask.max())}: save it as 8-bit (mode L)"
        )
    if mode == "1":
        return f"{got}: a 1-bit mask; save the class ids as 8-bit (mode L, values 0 and 1)"
    return got


@keyword_hints
class LabeledFolder(Dataset):
    """A folder of real (image, mask) pairs as a map-style dataset (layout: module docstring).

    Yields ``(image, mask)``: float32 (3, H, W) in [0, 1] and int64 (H, W) with
    ``ignore_index`` 255. With ``size`` (int or (H, W)) images are resized bilinearly
    with antialiasing (area-like when shrinking) and masks by nearest neighbour at
    pixel centres (``nearest-exact``), so class ids are never blended.

    ``class_names``: the names the model predicts, in id order; ``classes.json``, when
    present, must list the same names in the same order (ids in another order would be
    scored against the wrong classes). ``num_classes``: if None, the length of
    ``class_names`` or of ``classes.json``, else inferred as the largest id found + 1
    (ids up to ``MAX_CLASSES - 1`` = 253; a larger one is a problem).
    Everything is checked up front (every image and mask is decoded once); all problems
    are raised together as :class:`LabeledFolderError`. ``self.class_names``: the names
    from ``classes.json``, else the ``class_names`` given, else None.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int | Sequence[int] | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.root = nonempty_path(root, "root")
        self.size = _as_size(size)
        num_classes = _as_num_classes(num_classes)
        expected = None if class_names is None else check_class_names(class_names)
        if expected is not None:
            if num_classes is not None and len(expected) != num_classes:
                raise ValueError(
                    f"class_names has {len(expected)} names, but num_classes={num_classes}"
                )
            num_classes = _as_num_classes(len(expected))
        problems: list[str] = []
        if not self.root.is_dir():
            hint = "" if os.path.lexists(self.root) else close_names(self.root, folders=True)
            problem = with_hint(f"the folder {why_not_a_folder(self.root)}", hint)
            raise LabeledFolderError([problem], self.root)

        images: dict[str, Path] = {}
        bad_images: set[str] = set()  # stems already reported: not "a mask without an image"
        for p in _list_files(self.root / IMAGE_DIR, problems, IMAGE_DIR):
            rel, key = f"{IMAGE_DIR}/{p.name}", _key(p)
            why = _entry_problem(p)
            if why is not None:
                problems.append(f"{rel}: {why}")
                bad_images.add(key)
            elif p.suffix.lower() not in IMAGE_SUFFIXES:
                problems.append(f"{rel}: unsupported image type (use {', '.join(IMAGE_SUFFIXES)})")
                bad_images.add(key)
            elif key in images:
                problems.append(
                    f"{rel}: two images named {p.stem!r} ({images[key].name} and {p.name})"
                )
            else:
                images[key] = p
        masks: dict[str, Path] = {}
        bad_masks: set[str] = set()
        for p in _list_files(self.root / MASK_DIR, problems, MASK_DIR):
            rel, key = f"{MASK_DIR}/{p.name}", _key(p)
            why = _entry_problem(p)
            if why is not None:
                problems.append(f"{rel}: {why}")
                bad_masks.add(key)
            elif p.suffix.lower() != MASK_SUFFIX:
                problems.append(f"{rel}: masks must be lossless PNG files ({MASK_SUFFIX})")
                bad_masks.add(key)
            elif key in masks:
                problems.append(
                    f"{rel}: two masks named {p.stem!r} ({masks[key].name} and {p.name})"
                )
            else:
                masks[key] = p

        no_mask = sorted(set(images) - set(masks) - bad_masks)
        no_image = sorted(set(masks) - set(images) - bad_images)
        if no_mask:
            problems.append(
                f"images without a mask in {MASK_DIR}/: "
                f"{short_list([images[s].name for s in no_mask])}"
            )
        if no_image:
            problems.append(
                f"masks without an image in {IMAGE_DIR}/: "
                f"{short_list([masks[s].name for s in no_image])}"
            )
        folded = {s.casefold(): s for s in no_image}
        near = [
            f"{IMAGE_DIR}/{images[s].name} and {MASK_DIR}/{masks[folded[s.casefold()]].name}"
            for s in no_mask
            if s.casefold() in folded
        ]
        if near:
            problems.append(
                f"names differ only in upper/lower case (stems must match exactly): "
                f"{short_list(near)}"
            )

        self.class_names = _read_classes(self.root, problems)
        if self.class_names is not None and expected not in (None, self.class_names):
            problems.append(
                f"{CLASSES_FILE}: lists the classes {short_list(self.class_names)}, but "
                f"the model's classes are {short_list(expected)} (same names, same order)"
            )
        elif (
            self.class_names is not None
            and num_classes is not None
            and len(self.class_names) != num_classes
        ):
            problems.append(
                f"{CLASSES_FILE}: {len(self.class_names)} class names, "
                f"but num_classes={num_classes}"
            )
        if self.class_names is None:
            self.class_names = expected
        limit = (
            num_classes
            if num_classes is not None
            else (len(self.class_names) if self.class_names is not None else None)
        )

        self.names = sorted(set(images) & set(masks))
        self.image_paths = [images[n] for n in self.names]
        self.mask_paths = [masks[n] for n in self.names]
        if not self.names and not problems:
            problems.append(f"no image/mask pairs in {IMAGE_DIR}/ and {MASK_DIR}/")

        max_id, ignored = -1, False
        for name in self.names:
            found, has_ignore = self._check_pair(images[name], masks[name], limit, problems)
            max_id, ignored = max(max_id, found), ignored or has_ignore
        if not problems and max_id <= 0 and ignored and (limit is None or limit >= 2):
            problems.append(
                f"{MASK_DIR}/: every mask holds only class 0 and {IGNORE_INDEX}, which means "
                f"ignore, so nothing but class 0 would be scored; binary masks saved as "
                f"0/{IGNORE_INDEX}? Save the foreground as class 1"
            )
        if problems:
            raise LabeledFolderError(problems, self.root)

        if limit is None:
            limit = max_id + 1 if max_id >= 0 else 1
            logger.info("%s: no classes.json, num_classes inferred as %d", self.root, limit)
        self.num_classes = int(limit)

    @staticmethod
    def _check_pair(
        image_path: Path, mask_path: Path, limit: int | None, problems: list[str]
    ) -> tuple[int, bool]:
        """Record the pair's problems; return the largest class id in the mask (-1 if
        none) and whether it marks pixels as ignored."""
        img_rel = f"{IMAGE_DIR}/{image_path.name}"
        mask_rel = f"{MASK_DIR}/{mask_path.name}"
        image_size, orientation = None, None
        try:
            with Image.open(image_path) as im:
                image_size, image_mode = im.size, im.mode
                if image_mode in _IMAGE_MODES:
                    im.load()  # all of it: a truncated file fails now, not mid-evaluation
                try:
                    orientation = im.getexif().get(_ORIENTATION_TAG)
                except Exception:  # damaged EXIF: viewers ignore it too
                    orientation = None
        except Exception as err:  # PIL raises many types for damaged files
            problems.append(f"{img_rel}: unreadable image ({type(err).__name__}: {err})")
            image_size, image_mode = None, None
        if image_mode is not None and image_mode not in _IMAGE_MODES:
            problems.append(f"{img_rel}: unsupported image mode {image_mode} (expected 8-bit RGB)")
        if isinstance(orientation, int) and orientation in _ORIENTATIONS:
            problems.append(
                f"{img_rel}: EXIF orientation {orientation}: viewers and annotation tools "
                f"show this photo {_ORIENTATIONS[orientation]}, but its pixels are read as "
                "stored, so which way its mask was drawn is ambiguous; save the photo "
                "upright without the tag (PIL.ImageOps.exif_transpose) and check that the "
                "mask lines up"
            )
        try:
            with Image.open(mask_path) as im:
                im.load()
                mask_mode, mask_format = im.mode, im.format
                frames = getattr(im, "n_frames", 1)
                mask = np.asarray(im)
        except Exception as err:
            problems.append(f"{mask_rel}: unreadable mask ({type(err).__name__}: {err})")
            return -1, False
        if mask_format != "PNG":
            problems.append(f"{mask_rel}: is a {mask_format} file, expected a PNG")
            return -1, False
        if frames != 1:
            problems.append(f"{mask_rel}: an animated PNG with {frames} frames; a mask is one")
            return -1, False
        if mask_mode not in ("L", "P"):
            problems.append(f"{mask_rel}: {_mask_mode_problem(mask_mode, mask)}")
            return -1, False
        if image_size is not None and image_size != (mask.shape[1], mask.shape[0]):
            problems.append(
                f"{mask_rel}: size {mask.shape[1]}x{mask.shape[0]} differs from "
                f"{img_rel} ({image_size[0]}x{image_size[1]}, width x height)"
            )
        ids = np.unique(mask)
        has_ignore = bool(ids.size and ids[-1] == IGNORE_INDEX)
        ids = ids[ids != IGNORE_INDEX]
        if limit is not None:
            bad = ids[ids >= limit].tolist()
            if bad:
                problems.append(
                    f"{mask_rel}: class ids {short_list(bad)} out of range "
                    f"(K = {limit} classes: 0..{limit - 1}, {IGNORE_INDEX} = ignore)"
                )
        else:  # K inferred as the largest id + 1: at most MAX_CLASSES
            bad = ids[ids >= MAX_CLASSES].tolist()
            if bad:
                problems.append(
                    f"{mask_rel}: class ids {short_list(bad)} out of range (at most "
                    f"{MAX_CLASSES} classes fit: ids 0..{MAX_CLASSES - 1}, {IGNORE_INDEX} = "
                    f"ignore); add {CLASSES_FILE} or pass num_classes"
                )
        return (int(ids.max()) if ids.size else -1), has_ignore

    def __len__(self) -> int:
        return len(self.names)

    def _read(self, path: Path, what: str, convert: str | None) -> np.ndarray:
        rel = f"{path.parent.name}/{path.name}"
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert(convert) if convert else im)
        except Exception as err:  # checked when the folder was opened: changed since?
            problem = f"{rel}: unreadable {what} ({type(err).__name__}: {err})"
            raise LabeledFolderError(
                [f"{problem}; changed since the folder was opened?"], self.root
            ) from err

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = check_index(index, len(self), "sample", "this folder")
        rgb = self._read(self.image_paths[index], "image", "RGB")
        mask = self._read(self.mask_paths[index], "mask", None)
        if mask.shape != rgb.shape[:2] or mask.dtype != np.uint8:
            problem = (
                f"{MASK_DIR}/{self.mask_paths[index].name}: now a {mask.dtype} mask of shape "
                f"{mask.shape} for an image of {rgb.shape[:2]}"
            )
            raise LabeledFolderError(
                [f"{problem}; changed since the folder was opened?"], self.root
            )
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)
        target = torch.from_numpy(mask.astype(np.int64))
        if self.size is not None and tuple(target.shape) != self.size:
            image = F.interpolate(
                image[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
            )[0].clamp_(0.0, 1.0)
            target = F.interpolate(
                target[None, None].float(), size=self.size, mode="nearest-exact"
            )[0, 0].to(torch.int64)
        return image, target

    def __repr__(self) -> str:
        return (
            f"LabeledFolder({str(self.root)!r}, {len(self)} samples, "
            f"num_classes={self.num_classes}, size={self.size})"
        )


# ---------------------------------------------------------------- writing
def _images_uint8(images: Any) -> np.ndarray:
    """(N, H, W, 3) uint8 from uint8 (N, H, W, 3) or float [0, 1] (N, 3, H, W) / (N, H, W, 3)."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim != 4 or 3 not in (arr.shape[1], arr.shape[-1]):
        raise ValueError(
            f"images must be (N, H, W, 3) uint8 or (N, 3, H, W) float in [0, 1], "
            f"got shape {arr.shape}"
        )
    floating = np.issubdtype(arr.dtype, np.floating)
    if not floating and arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 or floating in [0, 1], got {arr.dtype}")
    channels_last = arr.shape[-1] == 3 and (arr.shape[1] != 3 or not floating)
    if not channels_last:
        arr = arr.transpose(0, 2, 3, 1)
    if floating:
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValueError(
                f"images hold {int((~finite).sum())} non-finite values (NaN or inf); "
                "nothing was written"
            )
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                "(generator output in [-1, 1]: pass (x + 1) / 2, or uint8)"
            )
        arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _replaced_entries(
    image_dir: Path, mask_dir: Path, keys: dict[str, str], suffix: str
) -> list[tuple[Path, Path]]:
    """The entries of ``images/`` and ``masks/`` that a write of the stems ``keys``
    (NFC key -> stem) replaces under another name (``00000.jpg`` when ``00000.png`` is
    written, a decomposed "café"), each with the file that replaces it. A folder there
    is refused before anything is written: it is not a file to replace."""
    stale: list[tuple[Path, Path]] = []
    for folder, suffixes, new_suffix in (
        (image_dir, IMAGE_SUFFIXES, suffix),
        (mask_dir, (MASK_SUFFIX,), MASK_SUFFIX),
    ):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            stem = keys.get(_key(p))
            if p.name.startswith(".") or stem is None or p.suffix.lower() not in suffixes:
                continue
            new = folder / f"{stem}{new_suffix}"
            if p.is_dir() and not p.is_symlink():
                raise FileExistsError(
                    f"{folder.name}/{p.name}: a folder, where the file of name {stem!r} "
                    "goes; move it away (nothing was written)"
                )
            if p.name != new.name:
                stale.append((p, new))
    return stale


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_kept_classes(root: Path, masks: np.ndarray) -> None:
    """Refuse, before anything is written, a ``classes.json`` left in ``root`` that the
    masks written without ``class_names`` would not fit (the folder would not open)."""
    problems: list[str] = []
    names = _read_classes(root, problems)
    if problems:
        raise ValueError(
            f"{root}: {problems[0]}; pass class_names to replace it (nothing was written)"
        )
    if names is None:
        return
    ids = masks[masks != IGNORE_INDEX]
    bad = np.unique(ids[ids >= len(names)]).tolist()
    if bad:
        raise ValueError(
            f"{root / CLASSES_FILE} lists {len(names)} classes ({short_list(names)}), but the "
            f"masks hold class ids {short_list(bad)} outside 0..{len(names) - 1}; pass "
            f"class_names to replace it, or remove it (nothing was written)"
        )


def write_labeled_folder(
    root: str | os.PathLike,
    images: Any,
    masks: Any,
    class_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    image_format: str = "png",
    exist_ok: bool = False,
) -> Path:
    """Write (image, mask) pairs in the :class:`LabeledFolder` layout; returns ``root``.

    ``images``: uint8 (N, H, W, 3), or float in [0, 1] as (N, 3, H, W) (the stream's
    layout) or (N, H, W, 3); NaN or inf is refused. ``masks``: integer (N, H, W), class
    ids 0..K-1 or 255, K = ``len(class_names)``, or without ``class_names`` at most
    ``MAX_CLASSES`` (ids 0..253: :class:`LabeledFolder` infers K as the largest id + 1).
    ``class_names``: distinct non-empty names in id order (written to ``classes.json``;
    a plain string is refused). ``names``: file stems (default ``00000``, ``00001``,
    ...). ``image_format``: "png" (lossless) or "jpg" (quality 95). Everything is
    checked before anything is written, so :class:`LabeledFolder` reads back what was
    written; names are compared as :class:`LabeledFolder` matches stems (after Unicode
    NFC normalisation), so "café" typed and "café" decomposed are one name and refused.
    Each file is written to a temp file and renamed. Refuses to write into non-empty
    ``images/`` or ``masks/`` folders unless ``exist_ok``: then each written name
    replaces that name's image and mask, also one of another extension or normalisation
    (``00000.jpg`` when writing ``00000.png``: removed once the new file is in place),
    and other names are left alone. Without ``class_names`` an existing ``classes.json``
    is kept when the masks' ids fit it, and refused (before anything is written) when
    they do not or it cannot be read: pass ``class_names`` to replace it.
    """
    root = nonempty_path(root, "root")
    rgb = _images_uint8(images)
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if m.ndim != 3 or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"masks must be integer (N, H, W), got shape {m.shape} dtype {m.dtype}")
    if m.shape != rgb.shape[:3]:
        raise ValueError(f"masks {m.shape} and images {rgb.shape[:3]} (N, H, W) do not match")
    if class_names is not None:
        class_names = check_class_names(class_names)
    K = len(class_names) if class_names is not None else MAX_CLASSES
    bad = np.unique(m[((m < 0) | (m >= K)) & (m != IGNORE_INDEX)]).tolist()
    if bad:
        whose = (
            f"the {K} class_names"
            if class_names is not None
            else f"at most {MAX_CLASSES} classes; pass class_names"
        )
        raise ValueError(
            f"masks hold class ids {short_list(bad)} outside 0..{K - 1} ({whose}) and "
            f"{IGNORE_INDEX} (ignore)"
        )
    fmt = image_format.lower().lstrip(".")
    if fmt not in ("png", "jpg", "jpeg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    n = rgb.shape[0]
    if isinstance(names, (str, bytes)):
        raise ValueError(f"names must be a sequence of file stems, got {names!r:.80}")
    stems = [f"{i:05d}" for i in range(n)] if names is None else [str(s) for s in names]
    if len(stems) != n or len(set(stems)) != n:
        raise ValueError(
            f"names: need {n} distinct names, got {len(stems)} ({len(set(stems))} distinct)"
        )
    odd = [s for s in stems if not s or s.startswith(".") or "/" in s or "\\" in s]
    if odd:
        raise ValueError(f"names must be plain file stems, got {short_list(odd)}")
    # LabeledFolder's own rule: two names of one key are two images of one stem to it
    keys: dict[str, str] = {}
    for stem in stems:
        key = _key(Path(f"{stem}{MASK_SUFFIX}"))
        if key in keys:
            raise ValueError(
                f"names: {keys[key]!a} and {stem!a} differ only in Unicode "
                "normalisation, and LabeledFolder matches file stems after NFC "
                "normalisation: they would be two images of one name"
            )
        keys[key] = stem

    image_dir, mask_dir = root / IMAGE_DIR, root / MASK_DIR
    suffix = ".png" if fmt == "png" else ".jpg"
    stale: list[tuple[Path, Path]] = []  # (old entry, the new file that replaces it)
    if exist_ok:
        stale = _replaced_entries(image_dir, mask_dir, keys, suffix)
        if class_names is None:
            _check_kept_classes(root, m)
    else:
        busy = [
            f"{d.name}/"
            for d in (image_dir, mask_dir)
            if d.is_dir() and any(not p.name.startswith(".") for p in d.iterdir())
        ]
        if busy:
            raise FileExistsError(
                f"{root}: {' and '.join(busy)} already hold files; write elsewhere or pass "
                "exist_ok=True to replace same-named files"
            )
    make_folder(image_dir, "labeled folder")
    make_folder(mask_dir, "labeled folder")
    for i, stem in enumerate(stems):
        image = Image.fromarray(rgb[i], mode=None)
        if fmt == "png":
            atomic_write(image_dir / f"{stem}{suffix}", lambda f, im=image: im.save(f, "PNG"))
        else:
            atomic_write(
                image_dir / f"{stem}{suffix}", lambda f, im=image: im.save(f, "JPEG", quality=95)
            )
        mask = Image.fromarray(m[i].astype(np.uint8), mode=None)
        atomic_write(mask_dir / f"{stem}{MASK_SUFFIX}", lambda f, im=mask: im.save(f, "PNG"))
    if class_names is not None:
        text = json.dumps(list(class_names), indent=2) + "\n"
        atomic_write(root / CLASSES_FILE, lambda f: f.write(text.encode("utf-8")))
    for old, new in stale:  # only now: a failed write leaves the old pair, never none
        if not _same_file(old, new):  # a case-insensitive disk: the new file itself
            old.unlink(missing_ok=True)
    logger.info("wrote %d labeled images to %s", n, root)
    return root
