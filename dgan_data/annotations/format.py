"""The annotation folder format: file names, limits, the label-frame rules, the error.

Shared by the folder reader and writer (``files``), :class:`Annotations` (``folder``), the
sampler (``sample``) and the importers (``tools``, ``datasetgan``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..conventions import IGNORE_INDEX, check_distinct_colours
from ..schema import Any_, Dict, Float, Int, IntList, ListOf, Optional, Str

__all__ = [
    "CROPS",
    "DEFAULT_TOLERANCE",
    "FORMAT_VERSION",
    "IGNORE_INDEX",
    "MANIFEST",
    "AnnotationError",
    "resolve_crop",
]

#: Version of the folder format written by :meth:`Annotations.save`.
FORMAT_VERSION = 1
FORMAT_NAME = "dgan_data.annotations"
MANIFEST = "manifest.json"
TRUNCATION_CENTER_FILE = "truncation_center.npy"
#: Default largest per-pixel difference (0..255 levels) between a stored image and
#: its regeneration: float rounding on another device or batch size can move a pixel
#: across a quantisation step.
DEFAULT_TOLERANCE = 2
#: Named label frames, (top, left, height, width) in generated-image pixels. "car":
#: DatasetGAN's car generator renders 512x512 with the car in rows 64..448; its
#: labels are the 384x512 window (nv-tlabs/datasetGAN_release,
#: datasetGAN/train_interpreter.py, ``img[:, 64:448]`` when dim[0] != dim[1]).
CROPS: dict[str, tuple[int, int, int, int]] = {"car": (64, 0, 384, 512)}
NOISE_MODES = ("const",)
#: Sub-folders of an annotation folder.
SUBDIRS = ("images", "masks", "latents")
LATENT_KINDS = ("w", "z")

#: A manifest is a few KB per sample; far larger files are refused before parsing.
MAX_MANIFEST_BYTES = 64 * 2**20
#: Most samples ``sample_annotation_folder`` writes in one folder: images a person
#: annotates, and a manifest far below MAX_MANIFEST_BYTES (about 250 bytes a sample).
MAX_SAMPLES = 100_000
#: Types of the manifest's top-level fields (values are checked in detail on load).
MANIFEST_FIELDS = {
    "format": Optional(Str(64)),
    "format_version": Int(1, None),
    "class_names": Optional(ListOf(Str(256), max_len=IGNORE_INDEX)),
    "palette": Optional(ListOf(Any_(), max_len=IGNORE_INDEX)),
    "truncation": Optional(
        # cutoff 0 would switch truncation off: the manifest reader refuses it, so the
        # schema's message must not offer it (it said "an integer in [0, inf]")
        Dict(
            {"psi": Optional(Float()), "cutoff": Optional(Int(1, None)), "center": Optional(Str())}
        )
    ),
    "noise": Optional(Str(64)),
    "crop": Optional(Any_()),
    "image_resolution": Optional(IntList(2, 1, 65536)),
    "mask_resolution": Optional(IntList(2, 1, 65536)),
    "latent_kind": Optional(Str(8)),
    "latent_shape": Optional(ListOf(Int(1, 1 << 20), min_len=1, max_len=4)),
    "generator": Optional(Dict()),
    "samples": Optional(ListOf(Dict(), max_len=1_000_000)),
    "ignore_index": Optional(Int(0, 255)),
    "note": Optional(Str(100_000)),
}
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MASK_NOTE = (
    "Annotate each images/<id>.png and save its mask as masks/<id>.png: a single-channel "
    "8-bit PNG (mode L, or P whose indices are the class ids) of size mask_resolution "
    "(height, width), one class id per pixel: 0..K-1 in the order of class_names, "
    "255 = ignore. If a crop is set, the mask covers only that window of the image. "
    "Masks painted in colour (class i in colour i of palette, or of the default palette "
    "when it is null) convert in place with: dgan-data import-masks --format palette "
    "<folder>/masks --annotations <folder>. "
    "Fill in class_names, then load with dgan_data.Annotations.load(folder)."
)


class AnnotationError(ValueError):
    """Problems found in annotations; ``problems`` lists each one, naming its file, and
    ``advice`` (or None) says what to do about them (printed after them, not counted)."""

    def __init__(
        self,
        problems: Sequence[str],
        where: str | os.PathLike | None = None,
        *,
        advice: str | None = None,
    ):
        self.problems = list(problems)
        self.where = str(where) if where is not None else None
        self.advice = advice
        n = len(self.problems)
        head = f"{self.where}: " if self.where else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        tail = f"\n  {advice}" if advice else ""
        super().__init__(
            f"{head}{n} problem{'s' if n != 1 else ''} with the annotations:\n{lines}{tail}"
        )


class NoMasksYetError(AnnotationError):
    """A checked annotation folder in which no sample has a mask yet (a fresh
    ``dgan-data sample``): nothing to load, though the folder itself is sound."""


def resolve_crop(
    crop: str | Sequence[int] | dict[str, int] | None,
) -> tuple[int, int, int, int] | None:
    """None, a name from :data:`CROPS`, (top, left, height, width) or such a dict."""
    if crop is None:
        return None
    if isinstance(crop, str):
        if crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r}; named crops: {sorted(CROPS)}")
        return CROPS[crop]
    if isinstance(crop, dict):
        try:
            crop = [crop["top"], crop["left"], crop["height"], crop["width"]]
        except KeyError as err:
            raise ValueError(f"crop needs keys top, left, height, width; missing {err}") from None
    if isinstance(crop, (str, bytes)) or not isinstance(crop, (Sequence, np.ndarray)):
        raise ValueError(f"crop must be 4 ints (top, left, height, width), got {crop!r}")
    values = list(crop)
    if len(values) != 4 or not all(_is_int(v) for v in values):
        raise ValueError(f"crop must be 4 ints (top, left, height, width), got {crop!r}")
    top, left, height, width = (int(v) for v in values)
    if top < 0 or left < 0 or height <= 0 or width <= 0:
        raise ValueError(f"crop needs top, left >= 0 and height, width > 0, got {values}")
    return top, left, height, width


def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _frame_size(image_hw: tuple[int, int], crop: tuple[int, int, int, int] | None) -> tuple:
    return (crop[2], crop[3]) if crop is not None else tuple(image_hw)


def _frame_problem(
    mask_hw: tuple[int, int], image_hw: tuple[int, int], crop: tuple[int, int, int, int] | None
) -> str | None:
    """Why masks of ``mask_hw`` cannot label images of ``image_hw`` (None if they can)."""
    if crop is not None:
        top, left, h, w = crop
        if top + h > image_hw[0] or left + w > image_hw[1]:
            return f"crop (top, left, height, width) = {crop} does not fit in the image {image_hw}"
    mh, mw = mask_hw
    if crop is not None:
        if (mh, mw) != (crop[2], crop[3]):
            return (
                f"mask size {mh}x{mw} does not match the crop {crop[2]}x{crop[3]}: with a crop "
                "the masks label exactly the cropped window"
            )
        return None
    fh, fw = image_hw
    if mh * fw != mw * fh or mh > fh:
        return (
            f"mask size {mh}x{mw} does not match the image {fh}x{fw}: masks must have that "
            "size or be scaled down by one factor on both axes"
        )
    return None


def _palette(palette: Any, num_classes: int) -> list[tuple[int, int, int]] | None:
    """Accept K (r, g, b) triples or a flat list of 3K ints (the release's style), one
    colour per class (:func:`~dgan_data.conventions.check_distinct_colours`)."""
    if palette is None:
        return None
    try:
        values = np.asarray(palette)
    except ValueError:  # rows of different lengths
        values = None
    if values is None or values.dtype == object:
        raise ValueError(
            f"palette must hold one (r, g, b) per class ({num_classes}), got rows of "
            "different lengths"
        )
    if values.ndim == 1 and values.size % 3 == 0:
        values = values.reshape(-1, 3)
    if values.ndim != 2 or values.shape != (num_classes, 3):
        raise ValueError(
            f"palette must hold one (r, g, b) per class ({num_classes}), "
            f"got shape {tuple(values.shape)}"
        )
    if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() > 255:
        raise ValueError("palette entries must be integers in 0..255")
    rows = [tuple(int(c) for c in row) for row in values]
    check_distinct_colours(rows)
    return rows


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _bad_class_ids(mask: torch.Tensor, num_classes: int) -> list[int]:
    values = torch.unique(mask.to(torch.int64))
    bad = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    bad = torch.cat([bad, values[values < 0]])
    return sorted(int(v) for v in bad)
