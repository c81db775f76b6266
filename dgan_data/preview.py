"""Preview: label a few samples once and draw them as a grid (image, overlay, uncertainty)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .annotations import Annotations
from .conventions import keyword_hints
from .export import ExportedDataset
from .fileio import output_path_problem
from .labeler import check_labeler_options, labeler_from, warn_without_ensemble
from .palette import make_palette
from .presets.resolve import load_generator
from .seeds import check_seed, sample_seed
from .viz import preview_grid

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PREVIEW_NUM",
    "MAX_PREVIEW_NUM",
    "preview",
    "preview_annotations",
    "preview_export",
]

#: Most samples one preview draws: each is labeled and kept in memory, and the grid
#: grows with them (256 samples of 1,024 px make a canvas of about 2.4 GB).
MAX_PREVIEW_NUM = 256
#: Samples a preview of generated images draws by default.
DEFAULT_PREVIEW_NUM = 16


def preview(
    source: Any = None,
    num: int = DEFAULT_PREVIEW_NUM,
    out: str | os.PathLike = "grid.png",
    seed: int = 0,
    *,
    generator: Any = None,
    interpreter: Any = None,
    device: Any = None,
    batch_size: int = 8,
    **labeler_options: Any,
) -> Path:
    """Label ``num`` samples and write their :func:`~dgan_data.viz.preview_grid` to ``out``.

    ``source``: a preset name, a ``Labeler``, a ``DatasetGANStream``, or None with
    ``generator=`` and ``interpreter=``. Sample i has the seed of export candidate i
    (``sample_seed(seed, 0, i)``), so a preview shows the first candidates an export
    with the same seed would write (before the uncertainty filter); ``num`` is at most
    :data:`MAX_PREVIEW_NUM`. ``out`` must end in ``.png`` and be writable as a file (not a
    folder, not under a file): checked before any model loads.
    """
    check_labeler_options(labeler_options, "preview", preview)
    if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_PREVIEW_NUM:
        raise ValueError(
            f"num must be an int in 1..{MAX_PREVIEW_NUM} (a preview keeps every sample in "
            f"memory; export writes more), got {num!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    out = _preview_path(out)  # before any model loads, not when the grid is written
    seeds = [sample_seed(check_seed(seed), 0, i) for i in range(num)]
    labeler, _ = labeler_from(source, generator, interpreter, device, **labeler_options)
    warn_without_ensemble(labeler, "preview", "the uncertainty row is blank")
    images, masks, pixel_u = [], [], []
    for start in range(0, num, batch_size):
        batch = labeler.label(seeds[start : start + batch_size])
        batch.check_finite()
        u = batch.pixel_uncertainty
        if tuple(u.shape[-2:]) != tuple(batch.masks.shape[-2:]):
            u = F.interpolate(u[:, None], size=tuple(batch.masks.shape[-2:]), mode="nearest")[:, 0]
        images.append(batch.images.float().cpu())
        masks.append(batch.masks.cpu())
        pixel_u.append(u.float().cpu())
    path = preview_grid(
        torch.cat(images),
        torch.cat(masks),
        torch.cat(pixel_u),
        labeler.class_names,
        labeler.palette,
        out,
        named_by_user=True,
    )
    log.info("wrote a preview of %d samples to %s", num, path)
    return path


@keyword_hints
def preview_annotations(
    annotations: Annotations | str | os.PathLike,
    out: str | os.PathLike = "annotations.png",
    num: int | None = None,
    *,
    alpha: float = 0.5,
    generator: Any = None,
    device: Any = None,
) -> tuple[Path, list[str]]:
    """Draw an annotation folder's own images with its masks over them, to check masks
    drawn or imported by hand (a wrong class, a shifted mask, a mask of another image).

    ``annotations``: an :class:`Annotations` or a folder (read with
    ``skip_unannotated=True``, so a folder drawn part of the way shows what is drawn).
    ``generator`` (a generator, a checkpoint path or a preset name; optional): draw the
    images it regenerates from the folder's latents instead of the stored ones (a
    folder that stores none, such as an imported DatasetGAN release); its fingerprint
    must be the folder's.
    Each image is cut to the label frame (``crop``) and scaled to the mask size. The
    first ``num`` samples in the folder's order (None: all, at most
    :data:`MAX_PREVIEW_NUM`) run left to right. Returns the PNG path and the ids drawn.
    """
    _check_folder_num(num)
    out = _preview_path(out)
    if isinstance(annotations, Annotations):
        ann = annotations
    elif isinstance(annotations, (str, os.PathLike)):
        ann = Annotations.load(annotations, skip_unannotated=True)
    else:
        raise TypeError(
            f"annotations must be an Annotations or a folder, got {type(annotations).__name__}"
        )
    where = ann.root if ann.root is not None else "the annotations"
    count = min(len(ann), num if num is not None else MAX_PREVIEW_NUM)
    if num is None and len(ann) > count:
        log.info("%s: drawing the first %d of %d samples", where, count, len(ann))
    ann = ann.take(range(count)) if count < len(ann) else ann  # regenerate only these
    if generator is not None:
        if isinstance(generator, torch.nn.Module):
            G = generator if device is None else generator.to(device)
        else:
            G = load_generator(generator, device=device)
        ann = ann.with_generated_images(G)  # checks G's fingerprint against the folder's
    stored = ann.images
    if stored is None:
        raise ValueError(
            f"{where}: stores no images (latents only), so there is nothing to draw the masks "
            "over; give the generator that regenerates them (generator=..., or --generator)"
        )
    images = stored.cpu().float() / 255.0
    if ann.crop is not None:
        top, left, height, width = ann.crop
        images = images[:, :, top : top + height, left : left + width]
    masks = ann.masks
    if tuple(images.shape[-2:]) != tuple(masks.shape[-2:]):  # labels at a smaller size
        images = F.interpolate(
            images, size=tuple(masks.shape[-2:]), mode="bilinear", antialias=True,
            align_corners=False,
        ).clamp(0, 1)  # fmt: skip
    palette = ann.palette or make_palette(ann.num_classes)
    path = preview_grid(
        images, masks, None, ann.class_names, palette, out, alpha=alpha, named_by_user=True
    )
    ids = list(ann.ids or [])
    log.info("wrote a preview of %d annotated samples to %s", count, path)
    return path, ids


@keyword_hints
def preview_export(
    folder: str | os.PathLike,
    out: str | os.PathLike = "export.png",
    num: int | None = None,
    *,
    alpha: float = 0.5,
) -> tuple[Path, list[str]]:
    """Draw the first ``num`` samples of a finished export (each image above its mask;
    None: :data:`DEFAULT_PREVIEW_NUM`), read through :class:`ExportedDataset`, so a
    dataset on disk can be looked at as the stream is. Returns the PNG path and the
    ids drawn, left to right."""
    _check_folder_num(num)
    out = _preview_path(out)
    data = ExportedDataset(Path(folder))
    count = min(len(data), DEFAULT_PREVIEW_NUM if num is None else num)
    if count == 0:
        raise ValueError(f"{data.root}: the export holds no samples")
    items = [data[i] for i in range(count)]
    path = preview_grid(
        torch.stack([image for image, _ in items]),
        torch.stack([mask for _, mask in items]),
        None,
        data.class_names,
        data.palette,
        out,
        alpha=alpha,
        named_by_user=True,
    )
    log.info("wrote a preview of %d exported samples to %s", count, path)
    return path, [str(e["id"]) for e in data.entries[:count]]


def _check_folder_num(num: Any) -> None:
    if num is not None and (
        isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_PREVIEW_NUM
    ):
        raise ValueError(f"num must be an int in 1..{MAX_PREVIEW_NUM} or None, got {num!r}")


def _preview_path(out: str | os.PathLike) -> Path:
    """``out`` as a Path, refused unless it ends in .png and can be written as a file."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the preview is a PNG image; give a file name ending in .png")
    problem = output_path_problem(path)
    if problem:
        raise ValueError(f"out={str(path)!r}: {problem}")
    return path
