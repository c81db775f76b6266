"""Annotated samples: the few hand-labelled generated images an interpreter learns from.

An :class:`Annotations` object holds N samples, each a segmentation mask plus
everything needed to regenerate exactly the image that was annotated: its latent
(w, z or the seed of z), the truncation settings, the noise mode and the
fingerprint of the generator. The pixels the annotator saw may be stored as well,
so that :meth:`Annotations.validate` can prove that the latents still regenerate
them (a changed generator or noise convention otherwise trains the interpreter on
features of images nobody annotated).

On disk an annotation folder is::

    manifest.json        format version, generator, classes, truncation, samples
    images/<id>.png      RGB, exactly as the generator produced it (full resolution)
    masks/<id>.png       single-channel 8-bit PNG of class ids, 255 = ignore
    latents/<id>.npy     w (num_ws, w_dim) or z (z_dim,), float32

A mask covers the *label frame*. Without ``crop`` that is the whole generated image,
and the mask has the image's size or a size scaled down by one factor on both axes
(DatasetGAN labels its 1024 px face generator at 512 px). With ``crop`` = (top, left,
height, width) the mask is exactly height x width pixels of the image (DatasetGAN
labels its 512x512 car images only on rows 64..448: 384x512 masks). This is the
convention ``Interpreter.fit`` reads: crop in image pixels, labels at the crop's size.

``sample.py`` writes such a folder without masks, ready to annotate; ``datasetgan.py``
reads the layout of the DatasetGAN release.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..conventions import IGNORE_INDEX, generator_to_uint8, short_list
from ..fileio import (
    UnsafePathError,
    read_json,
    resolve_inside,
    write_json,
    write_npy,
    write_png,
)
from ..schema import (
    Any_,
    Dict,
    Float,
    Int,
    IntList,
    ListOf,
    Optional,
    SchemaError,
    Str,
    check_document,
)
from ..seeds import MAX_SEED, check_seeds, z_from_seeds

logger = logging.getLogger(__name__)

__all__ = [
    "CROPS",
    "DEFAULT_TOLERANCE",
    "FORMAT_VERSION",
    "IGNORE_INDEX",
    "AnnotationError",
    "Annotations",
    "SampleCheck",
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
_INT_OR_NULL = Optional(Int(0, None))
#: Types of the manifest's top-level fields (values are checked in detail on load).
MANIFEST_FIELDS = {
    "format": Optional(Str(64)),
    "format_version": Int(1, None),
    "class_names": Optional(ListOf(Str(256), max_len=IGNORE_INDEX)),
    "palette": Optional(ListOf(Any_(), max_len=IGNORE_INDEX)),
    "truncation": Optional(
        Dict({"psi": Optional(Float()), "cutoff": _INT_OR_NULL, "center": Optional(Str())})
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
    "Fill in class_names, then load with dgan_data.Annotations.load(folder)."
)


class AnnotationError(ValueError):
    """Problems found in annotations; ``problems`` lists each one, naming its file."""

    def __init__(self, problems: Sequence[str], where: str | os.PathLike | None = None):
        self.problems = list(problems)
        self.where = str(where) if where is not None else None
        n = len(self.problems)
        head = f"{self.where}: " if self.where else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}{n} problem{'s' if n != 1 else ''} with the annotations:\n{lines}")


# ------------------------------------------------------------------- pixels
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
    """Accept K (r, g, b) triples or a flat list of 3K ints (the release's style)."""
    if palette is None:
        return None
    values = np.asarray(palette)
    if values.ndim == 1 and values.size % 3 == 0:
        values = values.reshape(-1, 3)
    if values.ndim != 2 or values.shape != (num_classes, 3):
        raise ValueError(
            f"palette must hold one (r, g, b) per class ({num_classes}), "
            f"got shape {tuple(values.shape)}"
        )
    if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() > 255:
        raise ValueError("palette entries must be integers in 0..255")
    return [tuple(int(c) for c in row) for row in values]


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


def _module_device(G: torch.nn.Module) -> torch.device:
    for t in G.parameters():
        return t.device
    for t in G.buffers():
        return t.device
    return torch.device("cpu")


def _center_rows(center: torch.Tensor, num_ws: int) -> torch.Tensor:
    """The truncation centre as (num_ws, w_dim).

    DatasetGAN's ``avg_latent_stylegan1.npy`` always holds 18 rows, and generators
    below 1024 px read only the first ``num_ws`` of them; fewer rows is an error.
    """
    if center.ndim == 1:
        return center.expand(num_ws, -1)
    if center.shape[0] < num_ws:
        raise AnnotationError(
            [f"truncation centre has {center.shape[0]} rows, the generator has {num_ws} ws"]
        )
    return center[:num_ws]


def _truncate_towards(
    w: torch.Tensor, center: torch.Tensor, psi: float, cutoff: int | None
) -> torch.Tensor:
    """Lerp w (B, num_ws, w_dim) towards ``center`` on the first ``cutoff`` layers."""
    center = _center_rows(center, w.shape[1]).to(device=w.device, dtype=w.dtype)
    truncated = center + psi * (w - center)
    if cutoff is None or cutoff >= w.shape[1]:
        return truncated
    layer = torch.arange(w.shape[1], device=w.device).view(1, -1, 1)
    return torch.where(layer < cutoff, truncated, w)


# ------------------------------------------------------------------ reading
def _open_png(path: Path, name: str, problems: list[str]) -> tuple[np.ndarray, str] | None:
    """(array, mode) of a PNG, or None with the reason appended to ``problems``."""
    if not path.is_file():
        problems.append(f"{name}: missing")
        return None
    try:
        with Image.open(path) as im:
            im.load()
            if im.format != "PNG":
                problems.append(f"{name}: is a {im.format} file, expected a lossless PNG")
                return None
            return np.asarray(im), im.mode
    except Exception as err:  # PIL raises many types for damaged files
        problems.append(f"{name}: unreadable or corrupt image ({type(err).__name__}: {err})")
        return None


def _open_npy(path: Path, name: str, problems: list[str]) -> np.ndarray | None:
    if not path.is_file():
        problems.append(f"{name}: missing")
        return None
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # truncated, pickled or not an .npy at all
        problems.append(f"{name}: unreadable or corrupt .npy ({type(err).__name__}: {err})")
        return None


def _safe_relpath(
    value: Any, field_name: str, where: str, problems: list[str], root: Path | None = None
) -> str | None:
    """A relative path inside the folder; paths that leave it (absolute, ``..``, or a
    symlink anywhere on the way that leads out of ``root``) are refused."""
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: '{field_name}' must be a relative file name, got {value!r}")
        return None
    try:
        resolve_inside(root if root is not None else Path("."), value, f"'{field_name}'")
    except UnsafePathError as err:
        problems.append(f"{where}: {err}")
        return None
    return value


def check_writable_folder(root: Path, subdirs: Sequence[str] = SUBDIRS) -> None:
    """Refuse to write into ``root`` when it or one of its sub-folders is a file or a
    symlink that leads out of it (files would land somewhere else)."""
    if root.exists() and not root.is_dir():
        raise AnnotationError([f"{root}: exists and is not a folder"])
    problems = []
    for name in (*subdirs, MANIFEST):
        path = root / name
        if path.is_symlink() or path.exists():
            try:
                resolve_inside(root, name, name)
            except UnsafePathError as err:
                problems.append(str(err))
                continue
        if name != MANIFEST and path.exists() and not path.is_dir():
            problems.append(f"{name}: exists and is not a folder")
    if problems:
        raise AnnotationError(problems, root)


# -------------------------------------------------------------- annotations
@dataclass
class SampleCheck:
    """Result of regenerating one stored image: differences in 0..255 levels."""

    id: str
    image_file: str
    max_diff: int
    mean_diff: float
    ok: bool


@dataclass(eq=False)
class Annotations:
    """N annotated samples: masks, class names and the latents that regenerate the images.

    Build with :meth:`from_arrays` or :meth:`load`. Fields:

    - ``masks``: (N, H, W) uint8 class ids, 0..K-1, ``IGNORE_INDEX`` (255) = unlabelled.
    - ``class_names``: K names; ``palette``: optional K (r, g, b).
    - latents, at least one of: ``w`` (N, num_ws, w_dim) float32 (after truncation),
      ``z`` (N, z_dim) float32, ``seeds`` (N ints; z = :func:`z_from_seeds`). A stored
      w wins; z (or the seeds' z) goes through ``G.mapping`` with ``truncation_psi``
      and ``truncation_cutoff`` (None: the architecture's default) towards
      ``truncation_center`` if given (DatasetGAN's ``avg_latent``), else towards the
      generator's own average w.
    - ``noise``: the generator's noise mode; "const" so images are reproducible.
    - ``images``: optional (N, 3, H, W) uint8 as the generator produced them.
    - ``crop``: optional (top, left, height, width) label frame in image pixels.
    - ``ids``: one file-name-safe id per sample (default "00000", "00001", ...).
    """

    masks: torch.Tensor
    class_names: list[str]
    w: torch.Tensor | None = None
    z: torch.Tensor | None = None
    seeds: list[int] | None = None
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    truncation_center: torch.Tensor | None = None
    noise: str = "const"
    images: torch.Tensor | None = None
    generator_fingerprint: str | None = None
    generator_description: dict[str, Any] | None = None
    crop: tuple[int, int, int, int] | None = None
    palette: list[tuple[int, int, int]] | None = None
    ids: list[str] | None = None
    #: Per-sample file names relative to the folder it was loaded from (None: defaults).
    files: list[dict[str, str | None]] | None = field(default=None, repr=False)
    #: The folder it was loaded from; named in validation errors.
    root: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        masks = _as_tensor(self.masks, "masks")
        if masks.ndim == 2:
            problems.append(f"masks must be (N, H, W); got one mask {tuple(masks.shape)}")
        elif masks.ndim != 3:
            problems.append(f"masks must be (N, H, W), got shape {tuple(masks.shape)}")
        if masks.dtype.is_floating_point or masks.dtype == torch.bool:
            problems.append(f"masks must hold integer class ids, got dtype {masks.dtype}")
        if problems:
            raise AnnotationError(problems)
        n = masks.shape[0]
        if n == 0:
            raise AnnotationError(["no samples: masks has N = 0"])

        names = self.class_names
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise AnnotationError([f"class_names must be a list of strings, got {names!r}"])
        names = list(names)
        if not names or not all(isinstance(c, str) and c for c in names):
            problems.append(f"class_names must be non-empty strings, got {names!r}")
        elif len(set(names)) != len(names):
            dup = sorted({c for c in names if names.count(c) > 1})
            problems.append(f"class_names has duplicates: {dup}")
        if len(names) > IGNORE_INDEX:
            problems.append(f"at most {IGNORE_INDEX} classes fit a uint8 mask, got {len(names)}")
        num_classes = len(names)

        ids = [f"{i:05d}" for i in range(n)] if self.ids is None else list(self.ids)
        if len(ids) != n:
            problems.append(f"ids has {len(ids)} entries for {n} samples")
        bad_ids = [i for i in ids if not isinstance(i, str) or not _ID_PATTERN.fullmatch(i)]
        if bad_ids:
            problems.append(
                f"ids must be file-name safe (letters, digits, . _ -): {short_list(bad_ids)}"
            )
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            problems.append(f"duplicate ids: {short_list(dup)}")
        if problems:
            raise AnnotationError(problems)

        for i in range(n):
            bad = _bad_class_ids(masks[i], num_classes)
            if bad:
                problems.append(
                    f"{self._mask_file_at(i, ids)}: class ids {short_list(bad)} out of range "
                    f"(K = {num_classes} classes: 0..{num_classes - 1}, {IGNORE_INDEX} = ignore)"
                )
        masks = masks.to(torch.uint8).contiguous()

        w = z = None
        if self.w is not None:
            w = _as_tensor(self.w, "w")
            if w.ndim != 3 or w.shape[0] != n:
                problems.append(f"w must be (N={n}, num_ws, w_dim), got {tuple(w.shape)}")
            elif not w.dtype.is_floating_point:
                problems.append(f"w must be floating point, got {w.dtype}")
            elif not bool(torch.isfinite(w).all()):
                problems.append("w holds NaN or inf values")
            else:
                w = w.float().contiguous()
        if self.z is not None:
            z = _as_tensor(self.z, "z")
            if z.ndim != 2 or z.shape[0] != n:
                problems.append(f"z must be (N={n}, z_dim), got {tuple(z.shape)}")
            elif not z.dtype.is_floating_point:
                problems.append(f"z must be floating point, got {z.dtype}")
            elif not bool(torch.isfinite(z).all()):
                problems.append("z holds NaN or inf values")
            else:
                z = z.float().contiguous()
        seeds = None
        if self.seeds is not None:
            try:
                seeds = check_seeds(self.seeds)
            except (TypeError, ValueError) as err:
                problems.append(str(err))
            else:
                if len(seeds) != n:
                    problems.append(f"seeds has {len(seeds)} entries for {n} samples")
                elif z is not None and z.ndim == 2:
                    mismatch = [
                        ids[i]
                        for i, row in enumerate(z_from_seeds(seeds, z.shape[1]))
                        if not torch.allclose(row, z[i], atol=1e-6)
                    ]
                    if mismatch:
                        problems.append(
                            f"z differs from z_from_seeds(seeds) for samples {short_list(mismatch)}"
                        )
        if w is None and z is None and seeds is None:
            problems.append("no latents: give w, z or seeds so the images can be regenerated")

        center = None
        if self.truncation_center is not None:
            center = _as_tensor(self.truncation_center, "truncation_center").float()
            if center.ndim == 3 and center.shape[0] == 1:
                center = center[0]
            if not bool(torch.isfinite(center).all()):
                problems.append("truncation_center holds NaN or inf values")
            if center.ndim not in (1, 2):
                problems.append(
                    "truncation_center must be (num_ws, w_dim) or (w_dim,), "
                    f"got {tuple(center.shape)}"
                )

        psi = self.truncation_psi
        if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not np.isfinite(psi):
            problems.append(f"truncation_psi must be a finite number, got {psi!r}")
        cutoff = self.truncation_cutoff
        if cutoff is not None and (not _is_int(cutoff) or cutoff < 0):
            problems.append(f"truncation_cutoff must be None or an int >= 0, got {cutoff!r}")
        if self.noise not in NOISE_MODES:
            problems.append(
                f"noise must be one of {NOISE_MODES} (reproducible images), got {self.noise!r}"
            )

        try:
            crop = resolve_crop(self.crop)
        except ValueError as err:
            problems.append(str(err))
            crop = None
        try:
            palette = _palette(self.palette, num_classes)
        except ValueError as err:
            problems.append(str(err))
            palette = None

        images = None
        if self.images is not None:
            images = _as_tensor(self.images, "images")
            if images.ndim != 4 or images.shape[:2] != (n, 3):
                problems.append(f"images must be (N={n}, 3, H, W), got {tuple(images.shape)}")
            elif images.dtype != torch.uint8:
                problems.append(
                    f"images must be uint8 as the generator produced them (see "
                    f"to_uint8_image), got {images.dtype}"
                )
            else:
                reason = _frame_problem(tuple(masks.shape[1:]), tuple(images.shape[2:]), crop)
                if reason:
                    problems.append(reason)
        elif crop is not None:
            reason = _frame_problem(
                tuple(masks.shape[1:]), (crop[0] + crop[2], crop[1] + crop[3]), crop
            )
            if reason:
                problems.append(reason)

        fp = self.generator_fingerprint
        if fp is not None and not isinstance(fp, str):
            problems.append(f"generator_fingerprint must be a string, got {fp!r}")
        if problems:
            raise AnnotationError(problems)

        self.masks, self.class_names, self.ids = masks, names, ids
        self.w, self.z, self.seeds, self.truncation_center = w, z, seeds, center
        self.truncation_psi = float(psi)
        self.truncation_cutoff = None if cutoff is None else int(cutoff)
        self.crop, self.palette = crop, palette
        self.images = None if images is None else images.contiguous()

    # ------------------------------------------------------------- basics
    @classmethod
    def from_arrays(
        cls,
        *,
        masks: torch.Tensor | np.ndarray,
        class_names: Sequence[str],
        w: torch.Tensor | np.ndarray | None = None,
        z: torch.Tensor | np.ndarray | None = None,
        seeds: Sequence[int] | torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        truncation_center: torch.Tensor | np.ndarray | None = None,
        noise: str = "const",
        images: torch.Tensor | np.ndarray | None = None,
        generator_fingerprint: str | None = None,
        generator_description: dict[str, Any] | None = None,
        crop: str | Sequence[int] | None = None,
        palette: Sequence[Any] | None = None,
        ids: Sequence[str] | None = None,
    ) -> Annotations:
        """Annotations held in memory; raises :class:`AnnotationError` listing every problem."""
        return cls(
            masks=masks,
            class_names=list(class_names),
            w=w,
            z=z,
            seeds=None if seeds is None else check_seeds(seeds),
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            truncation_center=truncation_center,
            noise=noise,
            images=images,
            generator_fingerprint=generator_fingerprint,
            generator_description=generator_description,
            crop=crop,
            palette=palette,
            ids=None if ids is None else list(ids),
        )

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def mask_resolution(self) -> tuple[int, int]:
        """(H, W) of every mask."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def latent_kind(self) -> str:
        """What the latents are stored as: "w", "z" or "seed"."""
        return "w" if self.w is not None else "z" if self.z is not None else "seed"

    def _mask_file_at(self, i: int, ids: Sequence[str] | None = None) -> str:
        if self.files is not None and self.files[i].get("mask"):
            return str(self.files[i]["mask"])
        return f"masks/{(ids or self.ids)[i]}.png"

    def image_file(self, i: int) -> str:
        """File name (relative to the folder) of sample i's image."""
        if self.files is not None and self.files[i].get("image"):
            return str(self.files[i]["image"])
        return f"images/{self.ids[i]}.png"

    def mask_file(self, i: int) -> str:
        """File name (relative to the folder) of sample i's mask."""
        return self._mask_file_at(i)

    def latent_file(self, i: int) -> str:
        """File name (relative to the folder) of sample i's latent."""
        if self.files is not None and self.files[i].get("latent"):
            return str(self.files[i]["latent"])
        return f"latents/{self.ids[i]}.npy"

    # ------------------------------------------------------------ latents
    @torch.no_grad()
    def latents_w(
        self, G: torch.nn.Module, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """w (N, num_ws, w_dim) of every sample on ``device`` (default: G's device).

        The stored w as it is, else ``G.mapping`` of z (or of the seeds' z) with the
        stored truncation settings.
        """
        device = torch.device(device) if device is not None else _module_device(G)
        if self.w is not None:
            expected = (G.num_ws, G.w_dim)
            if tuple(self.w.shape[1:]) != expected:
                raise AnnotationError(
                    [
                        f"stored w has shape {tuple(self.w.shape[1:])} per sample, "
                        f"the generator expects {expected}"
                    ]
                )
            return self.w.to(device)
        z = self.z if self.z is not None else z_from_seeds(self.seeds, G.z_dim)
        if z.shape[1] != G.z_dim:
            raise AnnotationError(
                [f"stored z has {z.shape[1]} dims, the generator expects z_dim = {G.z_dim}"]
            )
        z = z.to(device)
        if self.truncation_center is None:
            return G.mapping(z, self.truncation_psi, self.truncation_cutoff)
        w = G.mapping(z, 1.0, None)
        cutoff = self.truncation_cutoff
        if cutoff is None:
            cutoff = G.default_truncation_cutoff()
        return _truncate_towards(w, self.truncation_center, self.truncation_psi, cutoff)

    @torch.no_grad()
    def generate_images(self, G: torch.nn.Module, batch_size: int = 8) -> torch.Tensor:
        """Regenerate every sample's image: (N, 3, H, W) uint8 on the CPU."""
        w_all = self.latents_w(G)
        out = []
        for start in range(0, len(self), batch_size):
            img, _ = G.synthesize(w_all[start : start + batch_size], noise=self.noise)
            out.append(generator_to_uint8(img).permute(0, 3, 1, 2).cpu())
        return torch.cat(out)

    def with_generated_images(self, G: torch.nn.Module, batch_size: int = 8) -> Annotations:
        """A copy whose ``images`` are regenerated by G and fingerprint set to G's.

        Use it on imported annotations (whose images are missing or lossy) before
        :meth:`save`, so that the folder can be validated later.
        """
        fp = G.fingerprint()
        if self.generator_fingerprint is not None and self.generator_fingerprint != fp:
            raise AnnotationError(
                [
                    f"annotations were made with generator {self.generator_fingerprint}, "
                    f"this generator is {fp}"
                ]
            )
        return Annotations(
            **{
                **self._fields(),
                "images": self.generate_images(G, batch_size),
                "generator_fingerprint": fp,
                "generator_description": G.describe(),
            }
        )

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    # ----------------------------------------------------------- validate
    @classmethod
    def merge(cls, *parts: Annotations) -> Annotations:
        """One annotation set from several (e.g. a first folder and suggested samples).

        The parts must agree on everything that makes their samples one training set:
        class names, generator fingerprint, truncation, noise, crop, mask size and latent
        kind; ids must be distinct. Differences are reported together, each naming the
        part (its folder when loaded from one) and the field.
        """
        if not parts:
            raise AnnotationError(["merge needs at least one annotation set"])
        bad = [type(p).__name__ for p in parts if not isinstance(p, Annotations)]
        if bad:
            raise AnnotationError([f"merge takes Annotations, got {bad}"])
        first = parts[0]

        def name(i: int) -> str:
            return str(parts[i].root) if parts[i].root is not None else f"part {i}"

        problems = []
        checks = {
            "class_names": lambda a: list(a.class_names),
            "generator fingerprint": lambda a: a.generator_fingerprint,
            "truncation_psi": lambda a: a.truncation_psi,
            "truncation_cutoff": lambda a: a.truncation_cutoff,
            "noise": lambda a: a.noise,
            "crop": lambda a: a.crop,
            "mask resolution": lambda a: tuple(a.mask_resolution),
            "latent kind": lambda a: (a.w is not None, a.z is not None, a.seeds is not None),
            "stored images": lambda a: a.images is not None,
        }
        for field_name, get in checks.items():
            want = get(first)
            for i, part in enumerate(parts[1:], 1):
                if get(part) != want:
                    problems.append(
                        f"{name(i)}: {field_name} {get(part)!r} differs from {name(0)}'s {want!r}"
                    )
        if first.w is not None:
            shapes = {tuple(p.w.shape[1:]) for p in parts}
            if len(shapes) > 1:
                problems.append(f"w latents have different shapes {sorted(shapes)}")
        ids = [i for p in parts for i in p.ids]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            problems.append(
                f"ids {short_list(dup)} appear in more than one part: sample the new part with "
                "another id prefix"
            )
        if problems:
            raise AnnotationError(problems)

        def cat(attr: str) -> torch.Tensor | None:
            values = [getattr(p, attr) for p in parts]
            return None if values[0] is None else torch.cat(values)

        return cls(
            masks=torch.cat([p.masks for p in parts]),
            class_names=list(first.class_names),
            w=cat("w"),
            z=cat("z"),
            seeds=None if first.seeds is None else [s for p in parts for s in p.seeds],
            truncation_psi=first.truncation_psi,
            truncation_cutoff=first.truncation_cutoff,
            truncation_center=first.truncation_center,
            noise=first.noise,
            images=cat("images"),
            generator_fingerprint=first.generator_fingerprint,
            generator_description=first.generator_description,
            crop=first.crop,
            palette=next((p.palette for p in parts if p.palette is not None), None),
            ids=ids,
        )

    def validate(
        self,
        G: torch.nn.Module,
        tolerance: int = DEFAULT_TOLERANCE,
        *,
        mean_tolerance: float | None = None,
        batch_size: int = 8,
    ) -> list[SampleCheck]:
        """Check the annotations against a generator; raise :class:`AnnotationError` if off.

        Checks: fingerprint (if stored); latent shapes; label frame vs the generator's
        image size; and, where images are stored, that the latents regenerate them: per
        sample the largest difference must be <= ``tolerance`` levels (0..255) and, if
        given, the mean difference <= ``mean_tolerance``. Returns one
        :class:`SampleCheck` per sample with stored images (empty list otherwise).
        """
        problems: list[str] = []
        fp = G.fingerprint()
        if self.generator_fingerprint is not None and self.generator_fingerprint != fp:
            problems.append(
                f"{MANIFEST}: generator fingerprint {self.generator_fingerprint} was recorded, "
                f"this generator's is {fp}: a different generator or weights"
            )
        if self.w is not None and tuple(self.w.shape[1:]) != (G.num_ws, G.w_dim):
            problems.append(
                f"latents: w is {tuple(self.w.shape[1:])} per sample, the generator "
                f"expects ({G.num_ws}, {G.w_dim})"
            )
        elif self.w is None and self.z is not None and self.z.shape[1] != G.z_dim:
            problems.append(f"latents: z has {self.z.shape[1]} dims, generator z_dim = {G.z_dim}")
        image_hw = tuple(int(s) for s in G.resolution)
        reason = _frame_problem(self.mask_resolution, image_hw, self.crop)
        if reason:
            problems.append(f"masks: {reason} (generator resolution {image_hw})")
        if self.images is not None and tuple(self.images.shape[2:]) != image_hw:
            problems.append(
                f"images: stored at {tuple(self.images.shape[2:])}, the generator makes {image_hw}"
            )
        if self.truncation_center is not None and self.w is None:
            _compare_centers(G, self.truncation_center)
        if problems:
            raise AnnotationError(problems, self.root)

        checks: list[SampleCheck] = []
        if self.images is None:
            logger.info("no stored images: skipped the regeneration check")
            return checks
        regenerated = self.generate_images(G, batch_size)
        for i in range(len(self)):
            diff = (regenerated[i].to(torch.int16) - self.images[i].to(torch.int16)).abs()
            max_diff, mean_diff = int(diff.max()), float(diff.float().mean())
            ok = max_diff <= tolerance and (mean_tolerance is None or mean_diff <= mean_tolerance)
            checks.append(SampleCheck(self.ids[i], self.image_file(i), max_diff, mean_diff, ok))
            logger.debug("%s: max diff %d, mean diff %.4f", self.image_file(i), max_diff, mean_diff)
            if not ok:
                limit = f"max {tolerance}" + (
                    f", mean {mean_tolerance}" if mean_tolerance is not None else ""
                )
                problems.append(
                    f"{self.image_file(i)}: the latent regenerates a different image (max abs "
                    f"diff {max_diff}, mean {mean_diff:.3f} levels; allowed {limit})"
                )
        if problems:
            raise AnnotationError(problems, self.root)
        return checks

    # ---------------------------------------------------------------- disk
    def save(self, folder: str | os.PathLike) -> Path:
        """Write the annotation folder (see the module docstring); returns the manifest path.

        Every file is written to a temporary name in its folder and renamed into place.
        """
        root = Path(folder)
        check_writable_folder(root)
        samples = []
        kind = "w" if self.w is not None else "z" if self.z is not None else None
        for i, sample_id in enumerate(self.ids):
            entry: dict[str, Any] = {
                "id": sample_id,
                "image": None,
                "mask": f"masks/{sample_id}.png",
                "seed": None if self.seeds is None else self.seeds[i],
                "latent": None,
                "latent_kind": None,
            }
            if self.images is not None:
                entry["image"] = f"images/{sample_id}.png"
                write_png(root / entry["image"], self.images[i].permute(1, 2, 0).numpy(), "RGB")
            write_png(root / entry["mask"], self.masks[i].numpy(), "L")
            if kind is not None:
                entry["latent"], entry["latent_kind"] = f"latents/{sample_id}.npy", kind
                latent = self.w[i] if kind == "w" else self.z[i]
                write_npy(root / entry["latent"], latent.numpy().astype(np.float32))
            samples.append(entry)
        if self.truncation_center is not None:
            write_npy(root / TRUNCATION_CENTER_FILE, self.truncation_center.numpy())
        latent_shape = None
        if kind is not None:
            latent_shape = list((self.w if kind == "w" else self.z).shape[1:])
        manifest = _manifest(
            fingerprint=self.generator_fingerprint,
            description=self.generator_description,
            class_names=self.class_names,
            palette=self.palette,
            psi=self.truncation_psi,
            cutoff=self.truncation_cutoff,
            center=TRUNCATION_CENTER_FILE if self.truncation_center is not None else None,
            noise=self.noise,
            crop=self.crop,
            image_resolution=None if self.images is None else list(self.images.shape[2:]),
            mask_resolution=list(self.mask_resolution),
            latent_kind=kind,
            latent_shape=latent_shape,
            samples=samples,
        )
        write_json(root / MANIFEST, manifest)
        logger.info("wrote %d annotated samples to %s", len(self), root)
        return root / MANIFEST

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Annotations:
        """Read and check an annotation folder.

        Every problem found (missing or corrupt files, wrong sizes, class ids out of
        range, wrong latent shapes, bad manifest fields, duplicate ids) is collected
        and reported in one :class:`AnnotationError`, each naming its file.
        """
        root = Path(folder)
        manifest = _read_manifest(root)
        problems: list[str] = []
        required = (
            "format_version",
            "class_names",
            "samples",
            "truncation",
            "noise",
            "mask_resolution",
        )
        for key in required:
            if key not in manifest:
                problems.append(f"{MANIFEST}: field '{key}' is missing")
        version = manifest.get("format_version")
        if version is not None and (not _is_int(version) or version > FORMAT_VERSION):
            raise AnnotationError(
                [
                    f"{MANIFEST}: format_version {version!r} is not supported (this version of "
                    f"dgan_data reads up to {FORMAT_VERSION}); upgrade dgan_data"
                ],
                root,
            )
        class_names = manifest.get("class_names")
        if "class_names" in manifest and (
            not isinstance(class_names, list)
            or not class_names
            or not all(isinstance(c, str) and c for c in class_names)
        ):
            problems.append(
                f"{MANIFEST}: class_names must be a non-empty list of names (class id i is "
                f"class_names[i]), got {class_names!r}"
            )
            class_names = None
        num_classes = len(class_names) if isinstance(class_names, list) else None

        trunc = manifest.get("truncation", {})
        if not isinstance(trunc, dict):
            problems.append(f"{MANIFEST}: truncation must be an object {{psi, cutoff, center}}")
            trunc = {}
        elif "truncation" in manifest and "psi" not in trunc:
            problems.append(f"{MANIFEST}: truncation.psi is missing")
        center = None
        if trunc.get("center") is not None:
            rel = _safe_relpath(trunc["center"], "truncation.center", MANIFEST, problems, root)
            if rel is not None:
                center = _open_npy(root / rel, rel, problems)
                if center is not None and (center.dtype != np.float32 or center.ndim not in (1, 2)):
                    problems.append(
                        f"{rel}: expected float32 (num_ws, w_dim) or (w_dim,), got "
                        f"{center.dtype} {center.shape}"
                    )
                    center = None

        mask_res = manifest.get("mask_resolution")
        if mask_res is not None and not (
            isinstance(mask_res, list) and len(mask_res) == 2 and all(_is_int(v) for v in mask_res)
        ):
            problems.append(
                f"{MANIFEST}: mask_resolution must be [height, width], got {mask_res!r}"
            )
            mask_res = None
        image_res = manifest.get("image_resolution")
        if image_res is not None and not (
            isinstance(image_res, list)
            and len(image_res) == 2
            and all(_is_int(v) for v in image_res)
        ):
            problems.append(
                f"{MANIFEST}: image_resolution must be [height, width] or null, got {image_res!r}"
            )
            image_res = None
        latent_shape = manifest.get("latent_shape")

        generator = manifest.get("generator") or {}
        if not isinstance(generator, dict):
            problems.append(f"{MANIFEST}: generator must be an object {{fingerprint, description}}")
            generator = {}

        entries = manifest.get("samples")
        if "samples" in manifest and (not isinstance(entries, list) or not entries):
            problems.append(f"{MANIFEST}: samples must be a non-empty list")
            entries = None
        if entries is None:
            raise AnnotationError(problems, root)

        ids: list[str] = []
        masks: list[np.ndarray | None] = []
        images: list[np.ndarray | None] = []
        latents: list[np.ndarray | None] = []
        kinds: list[str | None] = []
        seeds: list[int | None] = []
        files: list[dict[str, str | None]] = []
        seen_ids: dict[str, int] = {}
        mask_sizes: dict[tuple, list[str]] = {}
        image_sizes: dict[tuple, list[str]] = {}
        latent_shapes: dict[tuple, list[str]] = {}
        for k, entry in enumerate(entries):
            where = f"{MANIFEST}: samples[{k}]"
            if not isinstance(entry, dict):
                problems.append(f"{where} must be an object, got {entry!r}")
                continue
            sample_id = entry.get("id")
            if not isinstance(sample_id, str) or not _ID_PATTERN.fullmatch(sample_id):
                problems.append(f"{where}: 'id' must be a file-name-safe string, got {sample_id!r}")
                continue
            where = f"{MANIFEST}: sample '{sample_id}'"
            if sample_id in seen_ids:
                problems.append(
                    f"{where}: duplicate id (samples[{seen_ids[sample_id]}] and samples[{k}])"
                )
                continue
            seen_ids[sample_id] = k
            for key in ("mask", "latent", "seed", "image"):
                if key not in entry:
                    problems.append(f"{where}: field '{key}' is missing")

            mask_rel = _safe_relpath(entry.get("mask"), "mask", where, problems, root)
            mask = _read_mask(root, mask_rel, num_classes, problems)
            if mask is not None:
                mask_sizes.setdefault(mask.shape, []).append(mask_rel)

            image_rel = entry.get("image")
            if image_rel is not None:
                image_rel = _safe_relpath(image_rel, "image", where, problems, root)
            image = _read_image(root, image_rel, problems)
            if image is not None:
                image_sizes.setdefault(image.shape[:2], []).append(image_rel)

            kind = entry.get("latent_kind")
            latent_rel = entry.get("latent")
            latent = None
            if latent_rel is not None:
                latent_rel = _safe_relpath(latent_rel, "latent", where, problems, root)
                if kind not in LATENT_KINDS:
                    problems.append(f"{where}: latent_kind must be 'w' or 'z', got {kind!r}")
                else:
                    latent = _read_latent(root, latent_rel, kind, problems)
                if latent is not None:
                    latent_shapes.setdefault((kind, latent.shape), []).append(latent_rel)
            seed = entry.get("seed")
            if seed is not None and (not _is_int(seed) or not 0 <= seed < MAX_SEED):
                problems.append(f"{where}: seed must be an int in [0, 2**63), got {seed!r}")
                seed = None
            if latent_rel is None and seed is None:
                problems.append(f"{where}: neither a latent file nor a seed: cannot regenerate")

            ids.append(sample_id)
            masks.append(mask)
            images.append(image)
            latents.append(latent)
            kinds.append(kind if latent_rel is not None else None)
            seeds.append(seed)
            files.append({"image": image_rel, "mask": mask_rel, "latent": latent_rel})

        missing = [f for f in files if f["mask"] and not (root / f["mask"]).exists()]
        if missing:
            problems.append(
                f"{len(missing)} of {len(files)} masks missing: save each mask as a "
                "single-channel 8-bit PNG of class ids (255 = ignore) under the name listed "
                f"in {MANIFEST} (see its 'note')"
            )
        problems += _consistency(mask_sizes, mask_res, "mask", "mask_resolution")
        problems += _consistency(image_sizes, image_res, "image", "image_resolution")
        if len(latent_shapes) > 1:
            groups = "; ".join(
                f"{kind} {shape}: {short_list(names, 3)}"
                for (kind, shape), names in latent_shapes.items()
            )
            problems.append(f"latents differ in kind or shape: {groups}")
        elif latent_shape is not None and latent_shapes:
            ((kind, shape),) = latent_shapes
            if list(shape) != list(latent_shape):
                problems.append(
                    f"{MANIFEST}: latent_shape {latent_shape} but the files hold {list(shape)}"
                )
        present_kinds = set(kinds)
        if len(present_kinds) > 1:
            problems.append(
                f"{MANIFEST}: some samples have latent files and some not "
                f"({sorted(map(str, present_kinds))})"
            )
        has_seed = [s is not None for s in seeds]
        if any(has_seed) and not all(has_seed):
            missing = [i for i, s in zip(ids, seeds) if s is None]
            problems.append(
                f"{MANIFEST}: seeds must be given for all samples or none; missing for "
                f"{short_list(missing)}"
            )
        has_image = [f["image"] is not None for f in files]
        if any(has_image) and not all(has_image):
            problems.append(f"{MANIFEST}: images must be given for all samples or none")
        if problems:
            raise AnnotationError(problems, root)

        kind = kinds[0]
        stacked = torch.from_numpy(np.stack(latents)) if kind is not None else None
        crop_value = manifest.get("crop")
        try:
            return cls(
                masks=torch.from_numpy(np.stack(masks)),
                class_names=class_names,
                w=stacked if kind == "w" else None,
                z=stacked if kind == "z" else None,
                seeds=[int(s) for s in seeds] if all(has_seed) else None,
                truncation_psi=trunc.get("psi", 1.0),
                truncation_cutoff=trunc.get("cutoff"),
                truncation_center=None if center is None else torch.from_numpy(center),
                noise=manifest.get("noise"),
                images=(
                    torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
                    if all(has_image)
                    else None
                ),
                generator_fingerprint=generator.get("fingerprint"),
                generator_description=generator.get("description"),
                crop=crop_value,
                palette=manifest.get("palette"),
                ids=ids,
                files=files,
                root=root,
            )
        except AnnotationError as err:
            raise AnnotationError([f"{MANIFEST}: {p}" for p in err.problems], root) from None


def _read_mask(
    root: Path, rel: str | None, num_classes: int | None, problems: list[str]
) -> np.ndarray | None:
    """A mask PNG as (H, W) uint8 class ids, or None with its problems recorded."""
    if rel is None:
        return None
    opened = _open_png(root / rel, rel, problems)
    if opened is None:
        return None
    array, mode = opened
    if mode not in ("L", "P"):
        problems.append(
            f"{rel}: mask must be a single-channel 8-bit PNG (mode L, or P with class ids "
            f"as indices), got mode {mode} shape {array.shape}"
        )
        return None
    if num_classes is not None:
        bad = _bad_class_ids(torch.from_numpy(array.copy()), num_classes)
        if bad:
            problems.append(
                f"{rel}: class ids {short_list(bad)} out of range (K = {num_classes} "
                f"classes: 0..{num_classes - 1}, {IGNORE_INDEX} = ignore)"
            )
    return array


def _read_image(root: Path, rel: str | None, problems: list[str]) -> np.ndarray | None:
    """An RGB image PNG as (H, W, 3) uint8, or None with its problems recorded."""
    if rel is None:
        return None
    opened = _open_png(root / rel, rel, problems)
    if opened is not None and opened[1] != "RGB":
        problems.append(f"{rel}: image must be RGB, got mode {opened[1]}")
        return None
    return None if opened is None else opened[0]


def _read_latent(root: Path, rel: str | None, kind: str, problems: list[str]) -> np.ndarray | None:
    """A w (num_ws, w_dim) or z (z_dim,) float32 .npy, or None with its problems recorded."""
    if rel is None:
        return None
    latent = _open_npy(root / rel, rel, problems)
    want_ndim, want = (2, "(num_ws, w_dim)") if kind == "w" else (1, "(z_dim,)")
    if latent is not None and (latent.dtype != np.float32 or latent.ndim != want_ndim):
        problems.append(
            f"{rel}: a {kind} latent must be float32 {want}, got {latent.dtype} {latent.shape}"
        )
        return None
    if latent is not None and not np.isfinite(latent).all():
        problems.append(f"{rel}: the latent holds NaN or inf values")
        return None
    return latent


def _compare_centers(G: torch.nn.Module, center: torch.Tensor) -> None:
    """Warn when G's truncation centre differs from the one the annotations used."""
    try:
        avg = G.average_w().detach().float().cpu()
    except NotImplementedError:
        return
    num_ws = int(G.num_ws)
    try:
        c = _center_rows(center.float(), num_ws)
    except AnnotationError:
        c = None
    avg = _center_rows(avg, num_ws) if avg.ndim == 1 or avg.shape[0] >= num_ws else avg
    if c is None or avg.shape != c.shape or not torch.allclose(avg, c, atol=1e-4, rtol=1e-4):
        logger.warning(
            "the generator's average w differs from the annotations' truncation centre; "
            "annotated images use the stored centre, new samples will use the generator's"
        )


def _consistency(
    sizes: dict[tuple, list[str]], expected: list[int] | None, what: str, key: str
) -> list[str]:
    """Problems for files whose size differs from the manifest's or from the majority."""
    if not sizes:
        return []
    if expected is not None:
        target = tuple(expected)
        source = f"{MANIFEST} {key} {list(target)}"
    else:
        target = max(sizes, key=lambda s: len(sizes[s]))
        source = f"the other {what}s' {list(target[:2])}"
    problems = []
    for size, names in sizes.items():
        if tuple(size[:2]) != target:
            for name in names:
                problems.append(
                    f"{name}: {what} size {size[0]}x{size[1]} differs from {source} (height, width)"
                )
    return problems


def _read_manifest(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise AnnotationError([f"{root}: no such annotation folder"])
    path = root / MANIFEST
    if not path.is_file():
        raise AnnotationError(
            [
                f"{MANIFEST}: missing (an annotation folder holds manifest.json, images/, masks/, "
                "latents/; create one with `dgan-data sample`)"
            ],
            root,
        )
    try:
        resolve_inside(root, MANIFEST, MANIFEST)
        manifest = read_json(path, max_bytes=MAX_MANIFEST_BYTES)
    except (OSError, ValueError) as err:
        message = str(err).replace(str(path), MANIFEST)
        raise AnnotationError([message], root) from None
    problems = _manifest_field_problems(manifest)
    if problems:
        raise AnnotationError(problems, root)
    return manifest


def _manifest_field_problems(manifest: dict[str, Any]) -> list[str]:
    """Type problems of the manifest's top-level fields (one line each, naming the field)."""
    try:
        check_document(manifest, MANIFEST_FIELDS, MANIFEST)
    except SchemaError as err:
        return [str(err)]
    return []


def _manifest(
    *,
    fingerprint: str | None,
    description: dict[str, Any] | None,
    class_names: list[str] | None,
    palette: list[tuple[int, int, int]] | None,
    psi: float,
    cutoff: int | None,
    center: str | None,
    noise: str,
    crop: tuple[int, int, int, int] | None,
    image_resolution: list[int] | None,
    mask_resolution: list[int],
    latent_kind: str | None,
    latent_shape: list[int] | None,
    samples: list[dict[str, Any]],
    note: str | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
    }
    if note:
        manifest["note"] = note
    manifest.update(
        {
            "generator": {"fingerprint": fingerprint, "description": description},
            "class_names": class_names,
            "palette": None if palette is None else [list(c) for c in palette],
            "truncation": {"psi": psi, "cutoff": cutoff, "center": center},
            "noise": noise,
            "crop": None if crop is None else dict(zip(("top", "left", "height", "width"), crop)),
            "image_resolution": image_resolution,
            "mask_resolution": mask_resolution,
            "latent_kind": latent_kind,
            "latent_shape": latent_shape,
            "ignore_index": IGNORE_INDEX,
            "samples": samples,
        }
    )
    return manifest
