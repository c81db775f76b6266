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

Images and masks are matched by file stem (``images/0001.jpg`` <-> ``masks/0001.png``)
and listed in sorted stem order, the order fold indices refer to. Hidden files (".*")
are skipped; any other file is either part of a pair or an error.

:class:`LabeledFolder` checks the whole folder when it is created (every image has a
mask and vice versa, masks are single-channel, sizes agree, class ids are valid) and
reports all problems at once, naming the files. :func:`write_labeled_folder` writes
the layout, each file atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..conventions import IGNORE_INDEX, short_list
from ..fileio import atomic_write

__all__ = ["LabeledFolder", "LabeledFolderError", "write_labeled_folder"]

logger = logging.getLogger(__name__)

IMAGE_DIR, MASK_DIR, CLASSES_FILE = "images", "masks", "classes.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_SUFFIX = ".png"
_IMAGE_MODES = ("RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr")


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


def _list_files(folder: Path, problems: list[str], rel: str) -> list[Path]:
    if not folder.is_dir():
        problems.append(f"{rel}/: missing folder")
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _read_classes(root: Path, problems: list[str]) -> list[str] | None:
    path = root / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        problems.append(f"{CLASSES_FILE}: unreadable ({err})")
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        problems.append(f"{CLASSES_FILE}: expected a non-empty JSON list of class names")
        return None
    if len(names) >= IGNORE_INDEX:
        problems.append(f"{CLASSES_FILE}: {len(names)} classes; at most {IGNORE_INDEX} fit")
        return None
    return names


class LabeledFolder(Dataset):
    """A folder of real (image, mask) pairs as a map-style dataset (layout: module docstring).

    Yields ``(image, mask)``: float32 (3, H, W) in [0, 1] and int64 (H, W) with
    ``ignore_index`` 255. With ``size`` (int or (H, W)) images are resized bilinearly
    with antialiasing (area-like when shrinking) and masks by nearest neighbour at
    pixel centres (``nearest-exact``), so class ids are never blended.

    ``num_classes``: if None, taken from ``classes.json``, else inferred as the largest
    id found + 1. Everything is checked up front (masks are decoded once, image
    headers read); all problems are raised together as :class:`LabeledFolderError`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int | Sequence[int] | None = None,
        num_classes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.size = _as_size(size)
        problems: list[str] = []
        if not self.root.is_dir():
            raise LabeledFolderError(["not a folder"], self.root)

        images: dict[str, Path] = {}
        for p in _list_files(self.root / IMAGE_DIR, problems, IMAGE_DIR):
            rel = f"{IMAGE_DIR}/{p.name}"
            if not p.is_file():
                problems.append(f"{rel}: not a file")
            elif p.suffix.lower() not in IMAGE_SUFFIXES:
                problems.append(f"{rel}: unsupported image type (use {', '.join(IMAGE_SUFFIXES)})")
            elif p.stem in images:
                problems.append(
                    f"{rel}: two images named {p.stem!r} ({images[p.stem].name} and {p.name})"
                )
            else:
                images[p.stem] = p
        masks: dict[str, Path] = {}
        for p in _list_files(self.root / MASK_DIR, problems, MASK_DIR):
            rel = f"{MASK_DIR}/{p.name}"
            if not p.is_file():
                problems.append(f"{rel}: not a file")
            elif p.suffix.lower() != MASK_SUFFIX:
                problems.append(f"{rel}: masks must be lossless PNG files ({MASK_SUFFIX})")
            else:
                masks[p.stem] = p

        no_mask = sorted(set(images) - set(masks))
        no_image = sorted(set(masks) - set(images))
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

        self.class_names = _read_classes(self.root, problems)
        if num_classes is not None:
            if not 1 <= int(num_classes) < IGNORE_INDEX:
                raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX - 1}, got {num_classes}")
            if self.class_names is not None and len(self.class_names) != num_classes:
                problems.append(
                    f"{CLASSES_FILE}: {len(self.class_names)} class names, "
                    f"but num_classes={num_classes}"
                )
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

        max_id = -1
        for name in self.names:
            found = self._check_pair(images[name], masks[name], limit, problems)
            max_id = max(max_id, found)
        if problems:
            raise LabeledFolderError(problems, self.root)

        if limit is None:
            limit = max_id + 1 if max_id >= 0 else 1
            logger.info("%s: no classes.json, num_classes inferred as %d", self.root, limit)
        self.num_classes = int(limit)

    @staticmethod
    def _check_pair(
        image_path: Path, mask_path: Path, limit: int | None, problems: list[str]
    ) -> int:
        """Record the pair's problems; return the largest class id in the mask (-1 if none)."""
        img_rel = f"{IMAGE_DIR}/{image_path.name}"
        mask_rel = f"{MASK_DIR}/{mask_path.name}"
        try:
            with Image.open(image_path) as im:
                image_size, image_mode = im.size, im.mode
        except Exception as err:  # PIL raises many types for damaged files
            problems.append(f"{img_rel}: unreadable image ({type(err).__name__}: {err})")
            image_size, image_mode = None, None
        if image_mode is not None and image_mode not in _IMAGE_MODES:
            problems.append(f"{img_rel}: unsupported image mode {image_mode} (expected 8-bit RGB)")
        try:
            with Image.open(mask_path) as im:
                im.load()
                mask_mode, mask_format = im.mode, im.format
                mask = np.asarray(im)
        except Exception as err:
            problems.append(f"{mask_rel}: unreadable mask ({type(err).__name__}: {err})")
            return -1
        if mask_format != "PNG":
            problems.append(f"{mask_rel}: is a {mask_format} file, expected a PNG")
            return -1
        if mask_mode not in ("L", "P"):
            problems.append(
                f"{mask_rel}: mask must be a single-channel 8-bit PNG (mode L, or P with class "
                f"ids as indices), got mode {mask_mode} with shape {mask.shape}"
            )
            return -1
        if image_size is not None and image_size != (mask.shape[1], mask.shape[0]):
            problems.append(
                f"{mask_rel}: size {mask.shape[1]}x{mask.shape[0]} differs from "
                f"{img_rel} ({image_size[0]}x{image_size[1]}, width x height)"
            )
        ids = np.unique(mask)
        ids = ids[ids != IGNORE_INDEX]
        if limit is not None:
            bad = ids[ids >= limit].tolist()
            if bad:
                problems.append(
                    f"{mask_rel}: class ids {short_list(bad)} out of range "
                    f"(K = {limit} classes: 0..{limit - 1}, {IGNORE_INDEX} = ignore)"
                )
        return int(ids.max()) if ids.size else -1

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        with Image.open(self.image_paths[index]) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(self.mask_paths[index]) as im:
            mask = np.asarray(im)
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
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                "(generator output in [-1, 1]: pass (x + 1) / 2, or uint8)"
            )
        arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(arr)


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
    layout) or (N, H, W, 3). ``masks``: integer (N, H, W), class ids 0..K-1 or 255.
    ``names``: file stems (default ``00000``, ``00001``, ...). ``image_format``: "png"
    (lossless) or "jpg" (quality 95). Each file is written to a temp file and renamed.
    Refuses to write into non-empty ``images/`` or ``masks/`` folders unless
    ``exist_ok`` (then same-named files are replaced, others left alone).
    """
    root = Path(root)
    rgb = _images_uint8(images)
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if m.ndim != 3 or not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"masks must be integer (N, H, W), got shape {m.shape} dtype {m.dtype}")
    if m.shape != rgb.shape[:3]:
        raise ValueError(f"masks {m.shape} and images {rgb.shape[:3]} (N, H, W) do not match")
    K = len(class_names) if class_names is not None else IGNORE_INDEX
    if class_names is not None and not 1 <= K < IGNORE_INDEX:
        raise ValueError(f"class_names: {K} names; 1..{IGNORE_INDEX - 1} classes fit")
    bad = np.unique(m[((m < 0) | (m >= K)) & (m != IGNORE_INDEX)]).tolist()
    if bad:
        raise ValueError(
            f"masks hold class ids {short_list(bad)} outside 0..{K - 1} and {IGNORE_INDEX} (ignore)"
        )
    fmt = image_format.lower().lstrip(".")
    if fmt not in ("png", "jpg", "jpeg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    n = rgb.shape[0]
    stems = [f"{i:05d}" for i in range(n)] if names is None else [str(s) for s in names]
    if len(stems) != n or len(set(stems)) != n:
        raise ValueError(
            f"names: need {n} distinct names, got {len(stems)} ({len(set(stems))} distinct)"
        )
    odd = [s for s in stems if not s or s.startswith(".") or "/" in s or "\\" in s]
    if odd:
        raise ValueError(f"names must be plain file stems, got {short_list(odd)}")

    image_dir, mask_dir = root / IMAGE_DIR, root / MASK_DIR
    if not exist_ok:
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
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    suffix = ".png" if fmt == "png" else ".jpg"
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
    logger.info("wrote %d labeled images to %s", n, root)
    return root
