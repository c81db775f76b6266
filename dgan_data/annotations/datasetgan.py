"""Import of the DatasetGAN release's annotation layout into an :class:`Annotations`.

The release stores ``image_{i}.jpg``, ``image_mask{i}.npy``, ``latent_stylegan1.npy``
and ``avg_latent_stylegan1.npy`` per domain; this reads them into our format.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..conventions import (
    IGNORE_INDEX,
    MAX_LABEL_SIDE,
    check_bool,
    check_class_names,
    check_int,
    keyword_hints,
    short_list,
)
from ..fileio import nonempty_path, why_not_a_file, why_not_a_folder
from .files import _consistency, _open_npy
from .folder import Annotations
from .format import MAX_SAMPLES, AnnotationError, _is_int

logger = logging.getLogger(__name__)

__all__ = ["import_datasetgan_release"]


# ------------------------------------------------------------ DatasetGAN import
def _find_release_image(folder: Path, i: int) -> Path | None:
    """``image_{i}`` with a known extension; a name that is there but is no readable
    file (a link to nothing, a folder) is returned too, and named when it is opened."""
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
        p = folder / f"image_{i}{ext}"
        if os.path.lexists(p):
            return p
    return None


def _load_release_array(
    source: str | os.PathLike | np.ndarray | torch.Tensor, name: str, problems: list[str]
) -> np.ndarray | None:
    if isinstance(source, torch.Tensor):
        return source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        return source
    path = Path(source)
    return _open_npy(path, path.name if name is None else name, problems)


@keyword_hints
def import_datasetgan_release(
    folder: str | os.PathLike,
    *,
    class_names: Sequence[str],
    avg_latent: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
    latents: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
    num_images: int | None = None,
    crop: str | Sequence[int] | None = None,
    min_class_pixels: int = 0,
    small_class_value: int = 0,
    mask_size: tuple[int, int] | None = None,
    truncation_psi: float = 0.7,
    truncation_cutoff: int | None = None,
    palette: Sequence[Any] | None = None,
    require_images: bool = True,
) -> Annotations:
    """Read a DatasetGAN release annotation folder into :class:`Annotations` (z latents).

    Layout (nv-tlabs/datasetGAN_release): ``image_mask{i}.npy`` (H x W class ids),
    ``image_{i}.jpg`` (or .png), and the z of every image in ``latent_stylegan1.npy``
    (N, 512) (a (N, num_ws, w_dim) array is taken as w). The release keeps the latent
    files in a separate folder; pass ``latents`` / ``avg_latent`` (a path or array) when
    they are not in ``folder``. ``avg_latent`` (``avg_latent_stylegan1.npy``, default:
    looked up in ``folder``) is the release's truncation centre and is stored as
    ``truncation_center``.

    - Truncation: psi 0.7 as in the release; ``truncation_cutoff`` None means the
      generator's default (the release truncates the first 8 of 18 layers for car and
      face, 7 for bedroom and cat).
    - ``crop="car"`` (rows 64..448 of the 512x512 image) or (top, left, height, width).
    - ``mask_size`` (H, W): resize masks with nearest neighbour first, as the release
      does to its label resolution (same index choice as OpenCV's INTER_NEAREST).
    - ``min_class_pixels``: when > 0, every class other than 0 that covers fewer than
      that many pixels *in a mask as a whole* is relabelled ``small_class_value``. The
      release does this with 30 and background 0 (its ``prepare_data``); pass
      ``small_class_value=255`` to ignore such pixels instead of calling them background.
      Counts are per class per mask, not per connected fragment: stray pixels of a
      large class are kept.
    - The release's JPEGs are lossy and were drawn with random noise, so they are
      checked (present, readable, same size as the masks) but not kept: ``images`` is
      None; use :meth:`Annotations.with_generated_images` to fill it from a generator.
    """
    root = nonempty_path(folder, "folder")
    if not root.is_dir():
        raise AnnotationError(
            [f"{root}: {why_not_a_folder(root)}, not a DatasetGAN release folder"]
        )
    names = check_class_names(class_names)
    num_classes = len(names)
    if mask_size is not None and not (
        isinstance(mask_size, (tuple, list))
        and len(mask_size) == 2
        and all(_is_int(v) and 1 <= v <= MAX_LABEL_SIDE for v in mask_size)
    ):
        raise ValueError(
            f"mask_size must be two ints (H, W) in 1..{MAX_LABEL_SIDE} or None, "
            f"got {mask_size!r:.80}"
        )
    if isinstance(min_class_pixels, bool) or not _is_int(min_class_pixels) or min_class_pixels < 0:
        raise ValueError(f"min_class_pixels must be an int >= 0, got {min_class_pixels!r}")
    require_images = check_bool(require_images, "require_images")
    if num_images is not None:  # before the folder is listed: 10**18 listed missing files
        num_images = check_int(num_images, "num_images", 1, MAX_SAMPLES)
    small_class_value = check_int(small_class_value, "small_class_value")
    if small_class_value != IGNORE_INDEX and not 0 <= small_class_value < num_classes:
        raise ValueError(
            f"small_class_value must be a class id (0..{num_classes - 1}) or {IGNORE_INDEX} "
            f"(ignore), got {small_class_value!r}"
        )
    problems: list[str] = []

    latent_src = latents if latents is not None else root / "latent_stylegan1.npy"
    latent_all = _load_release_array(latent_src, _name_of(latent_src), problems)
    if avg_latent is None and os.path.lexists(root / "avg_latent_stylegan1.npy"):
        avg_latent = root / "avg_latent_stylegan1.npy"  # a link to nothing is named, not skipped
    center = None
    if avg_latent is not None:
        center = _load_release_array(avg_latent, _name_of(avg_latent), problems)
        if center is not None:
            center = np.squeeze(center) if center.ndim == 3 else center
            if center.ndim not in (1, 2) or not np.issubdtype(center.dtype, np.floating):
                problems.append(
                    f"{_name_of(avg_latent)}: expected a float (num_ws, w_dim) array, got "
                    f"{center.dtype} {center.shape}"
                )
                center = None

    mask_indices, padded = _listed_mask_indices(root)
    for name, index in padded:  # image_mask01.npy was counted as mask 1, never opened
        plain = f"image_mask{index}.npy"
        problems.append(
            f"{name}: a second file for mask {index} beside {plain}; remove one"
            if index in mask_indices
            else f"{name}: not a name the release writes (indices are not zero-padded); "
            f"rename it {plain}"
        )
    if num_images is None:
        n = len(mask_indices)
        indices = mask_indices
        if n == 0 and not padded:
            problems.append(f"{root.name}: no image_mask{{i}}.npy files")
        elif mask_indices != list(range(n)):
            problems.append(_numbering_problem(mask_indices))
    else:
        n = num_images
        indices = list(range(n))
        left_out = [f"image_mask{i}.npy" for i in mask_indices if i >= n]
        if left_out:  # asked for, but named: masks are never dropped in silence
            logger.warning(
                "%s: num_images=%d leaves out %d mask file%s: %s",
                root.name,
                n,
                len(left_out),
                "" if len(left_out) == 1 else "s",
                short_list(left_out),
            )

    kind = None
    if latent_all is not None:
        if latent_all.ndim == 2:
            kind = "z"
        elif latent_all.ndim == 3:
            kind = "w"
        else:
            problems.append(
                f"{_name_of(latent_src)}: expected (N, z_dim) z or (N, num_ws, w_dim) w, "
                f"got shape {latent_all.shape}"
            )
        if kind is not None and not np.issubdtype(latent_all.dtype, np.floating):
            problems.append(f"{_name_of(latent_src)}: expected floats, got {latent_all.dtype}")
            kind = None
        if kind is not None and latent_all.shape[0] < n:
            problems.append(
                f"{_name_of(latent_src)}: holds {latent_all.shape[0]} latents for {n} masks"
            )

    masks: list[np.ndarray] = []
    sizes: dict[tuple, list[str]] = {}
    for i in indices:
        mask_name = f"image_mask{i}.npy"
        raw = _open_npy(root / mask_name, mask_name, problems)
        mask = None
        if raw is not None:
            mask = np.squeeze(raw)
            if mask.ndim != 2 or not (
                np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)
            ):
                problems.append(
                    f"{mask_name}: expected an H x W array of class ids, got "
                    f"{raw.dtype} {raw.shape}"
                )
                mask = None
            elif 0 in mask.shape:
                problems.append(
                    f"{mask_name}: empty mask ({mask.shape[0]}x{mask.shape[1]} pixels); a mask "
                    "needs at least one pixel"
                )
                mask = None
            elif np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
                problems.append(f"{mask_name}: holds NaN or infinite values")
                mask = None
            elif not np.array_equal(mask, np.round(mask)):
                problems.append(f"{mask_name}: holds non-integer values")
                mask = None
        image_path = _find_release_image(root, i)
        why = "missing" if image_path is None else why_not_a_file(image_path)  # before open()
        if why is not None:
            if require_images:
                name = f"image_{i}.jpg" if image_path is None else image_path.name
                problems.append(f"{name}: {why} (pass require_images=False to skip)")
        else:
            opened: list[str] = []
            try:
                with Image.open(image_path) as im:
                    im.load()
                    image_hw = (im.height, im.width)
            except Exception as err:
                opened.append(f"{image_path.name}: unreadable or corrupt image ({err})")
            problems += opened
            if not opened and mask is not None and image_hw != mask.shape:
                problems.append(
                    f"{mask_name}: mask is {mask.shape[0]}x{mask.shape[1]} but "
                    f"{image_path.name} is {image_hw[0]}x{image_hw[1]}"
                )
        if mask is None:
            continue
        mask = mask.astype(np.int64)
        if mask_size is not None:
            mask = _resize_nearest(mask, tuple(mask_size))
        bad = sorted(
            int(v) for v in np.unique(mask) if (v >= num_classes and v != IGNORE_INDEX) or v < 0
        )
        if bad:
            problems.append(
                f"{mask_name}: class ids {short_list(bad)} out of range for "
                f"{num_classes} class names"
            )
            continue
        if min_class_pixels > 0:
            mask = _drop_small_classes(
                mask, num_classes, min_class_pixels, small_class_value, mask_name
            )
        sizes.setdefault(mask.shape, []).append(mask_name)
        masks.append(mask.astype(np.uint8))
    problems += _consistency(sizes, None, "mask", "")
    if problems:
        raise AnnotationError(problems, root)

    if latent_all.shape[0] > n:  # logged once the import succeeds
        logger.info(
            "%s holds %d latents; using the first %d (one per mask)",
            _name_of(latent_src),
            latent_all.shape[0],
            n,
        )
    latent_t = torch.from_numpy(np.asarray(latent_all[:n], dtype=np.float32))
    try:
        return Annotations.from_arrays(
            masks=np.stack(masks),
            class_names=names,
            w=latent_t if kind == "w" else None,
            z=latent_t if kind == "z" else None,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            truncation_center=None if center is None else np.asarray(center, dtype=np.float32),
            crop=crop,
            palette=palette,
        )
    except AnnotationError as err:
        raise AnnotationError(err.problems, root, advice=err.advice) from None


def _name_of(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return "latents array"


def _numbering_problem(indices: list[int]) -> str:
    """Which mask files a numbering with gaps misses, and what ``num_images`` would
    import (and leave out) instead of renumbering."""
    gaps = sorted(set(range(max(indices) + 1)) - set(indices))
    message = (
        f"mask files are not numbered 0..{len(indices) - 1}: missing "
        f"{short_list([f'image_mask{i}.npy' for i in gaps])}; renumber them"
    )
    if gaps[0] == 0:
        return message
    beyond = [f"image_mask{i}.npy" for i in indices if i > gaps[0]]
    return (
        f"{message}, or pass num_images={gaps[0]} to import image_mask0..{gaps[0] - 1} "
        f"only (leaving out {short_list(beyond)})"
    )


def _listed_mask_indices(root: Path) -> tuple[list[int], list[tuple[str, int]]]:
    """The sorted indices of ``image_mask{i}.npy`` in ``root``, and the names and
    indices of zero-padded ones (``image_mask01.npy``), which the release never writes."""
    indices: list[int] = []
    padded: list[tuple[str, int]] = []
    for p in root.glob("image_mask*.npy"):
        m = re.fullmatch(r"image_mask(\d+)\.npy", p.name)
        if m is None:
            continue
        index = int(m.group(1))
        if m.group(1) != str(index):
            padded.append((p.name, index))
        else:
            indices.append(index)
    return sorted(indices), sorted(padded)


def _nearest_rows(size_in: int, size_out: int) -> np.ndarray:
    """The source index of each output index, as OpenCV's INTER_NEAREST picks it (the
    release's ``cv2.resize``): ``floor(dst * (1 / (out / in)))`` in float64, which
    rounds an exact integer product down by one where the division is inexact."""
    scale = 1.0 / (size_out / size_in)
    rows = np.floor(np.arange(size_out, dtype=np.float64) * scale).astype(np.int64)
    return np.minimum(rows, size_in - 1)


def _resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to (H, W), choosing the rows and columns OpenCV would."""
    if tuple(mask.shape) == tuple(size):
        return mask
    rows = _nearest_rows(mask.shape[0], size[0])
    cols = _nearest_rows(mask.shape[1], size[1])
    return mask[rows[:, None], cols[None, :]]


def _drop_small_classes(
    mask: np.ndarray, num_classes: int, min_pixels: int, value: int, name: str
) -> np.ndarray:
    """Relabel every class 1..K-1 covering fewer than ``min_pixels`` pixels as ``value``."""
    counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=num_classes)
    small = [c for c in range(1, num_classes) if 0 < counts[c] < min_pixels]
    if small:
        logger.info(
            "%s: classes %s cover fewer than %d pixels; relabelled %d",
            name,
            small,
            min_pixels,
            value,
        )
        mask = mask.copy()
        mask[np.isin(mask, small)] = value
    return mask
