"""Sampling generated images to annotate: a folder of images, latents and a manifest.

:func:`sample_annotation_folder` writes everything but the masks, resumably; the user
draws ``masks/<id>.png`` (or imports them from an annotation tool) and loads the folder
with ``Annotations.load``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..conventions import (
    as_index,
    check_class_names,
    check_fingerprint,
    check_int,
    check_truncation_cutoff,
    check_truncation_psi,
    generator_to_uint8,
    keyword_hints,
    short_list,
)
from ..fileio import folder_lock, make_folder, nonempty_path, write_json, write_npy, write_png
from ..seeds import MAX_SEED, check_seeds, z_from_seeds
from .files import (
    _manifest,
    _open_npy,
    _open_png,
    _read_manifest,
    check_writable_folder,
    manifest_palette,
)
from .folder import Annotations, _repeated_seed_problems
from .format import (
    _ID_PATTERN,
    _MASK_NOTE,
    MANIFEST,
    MAX_SAMPLES,
    NOISE_MODES,
    AnnotationError,
    _frame_problem,
    _frame_size,
    _is_int,
    _palette,
    resolve_crop,
)
from .truncation import _module_device

logger = logging.getLogger(__name__)

__all__ = ["SampledFolder", "sample_annotation_folder"]


# ----------------------------------------------------------------- sampling
@dataclass
class SampledFolder:
    """What :func:`sample_annotation_folder` wrote: a folder of images waiting for masks."""

    root: Path
    ids: list[str]
    seeds: list[int]
    w: torch.Tensor
    written: list[str]
    skipped: list[str]

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def mask_path(self, sample_id: str) -> Path:
        """Where the annotator puts the mask of ``sample_id``."""
        return self.root / "masks" / f"{sample_id}.png"

    def image_path(self, sample_id: str) -> Path:
        return self.root / "images" / f"{sample_id}.png"

    def load(self) -> Annotations:
        """:meth:`Annotations.load` of the folder (once the masks are in place)."""
        return Annotations.load(self.root)


def _sample_complete(
    root: Path, sample_id: str, w: torch.Tensor, image_hw: tuple[int, int]
) -> bool:
    """True if the sample's image and latent exist, read back whole and match ``w``."""
    problems: list[str] = []
    opened = _open_png(root / "images" / f"{sample_id}.png", "image", problems)
    if opened is None or opened[1] != "RGB" or opened[0].shape[:2] != tuple(image_hw):
        return False
    latent = _open_npy(root / "latents" / f"{sample_id}.npy", "latent", problems)
    if latent is None or latent.dtype != np.float32 or latent.shape != tuple(w.shape):
        return False
    return torch.allclose(torch.from_numpy(latent), w, rtol=1e-4, atol=1e-5)


def _check_resumable(root: Path) -> None:
    """``root`` is absent, empty, or holds a manifest to resume: files of the user's in a
    folder without one would be mixed into the annotation folder (and a stray PNG in
    ``images/`` fails its validation later)."""
    if (root / MANIFEST).exists() or not root.is_dir() or not any(root.iterdir()):
        return
    raise AnnotationError(
        [f"is not empty and holds no {MANIFEST} to resume"],
        root,
        advice="sample into a new or empty folder",
    )


@keyword_hints
@torch.no_grad()
def sample_annotation_folder(
    G: torch.nn.Module,
    num: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    truncation_psi: float = 1.0,
    class_names: Sequence[str] | None = None,
    batch_size: int = 8,
    *,
    truncation_cutoff: int | None = None,
    crop: str | Sequence[int] | None = None,
    palette: Sequence[Any] | None = None,
    noise: str = "const",
    seeds: Sequence[int] | None = None,
    id_prefix: str = "",
    mask_resolution: Sequence[int] | None = None,
) -> SampledFolder:
    """Write ``num`` generated images to annotate, with their seeds, w latents and manifest.

    Sample i has seed ``seed + i`` (or ``seeds[i]`` when given: ``num`` must then equal
    ``len(seeds)``) and id ``f"{id_prefix}{i:05d}"``; its w (after truncation) goes
    to ``latents/<id>.npy`` and its image to ``images/<id>.png``. ``masks/`` is created
    empty: the annotator puts ``masks/<id>.png`` there (the manifest's ``note`` says how).
    Masks have the crop's size, else ``mask_resolution`` (height, width; the generator's
    resolution by default, or that scaled down by one factor, as a preset whose
    ``label_resolution`` is below its images' labels them).
    Resumable: samples whose image and latent already exist, read back whole and match
    are skipped; a folder made with other settings is refused, not overwritten.
    """
    if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_SAMPLES:
        raise ValueError(
            f"num must be an int in 1..{MAX_SAMPLES} (images to annotate by hand), got {num!r:.40}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    truncation_psi = check_truncation_psi(truncation_psi)
    truncation_cutoff = check_truncation_cutoff(truncation_cutoff)
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    if seeds is not None:
        seeds = check_seeds(seeds)
        if len(seeds) != num:
            raise ValueError(f"seeds must be {num} seeds (one per sample), got {len(seeds)}")
        twice = sorted(s for s, n in Counter(seeds).items() if n > 1)
        if twice:
            raise ValueError(f"seeds must be distinct; repeated: {short_list(twice)}")
    elif not _is_int(seed) or not 0 <= seed <= MAX_SEED - num:
        raise ValueError(
            f"seed must be an int with 0 <= seed and seed + num <= 2**63, got seed {seed!r:.40} "
            f"with num {num}"
        )
    else:
        seeds = list(range(int(seed), int(seed) + num))
    longest = 128 - len(f"{max(num - 1, 0):05d}")  # an id is at most 128 characters
    if not isinstance(id_prefix, str) or (id_prefix and not _ID_PATTERN.fullmatch(id_prefix)):
        raise ValueError(
            "id_prefix must be file-name safe (letters, digits, . _ -, starting with a letter "
            f"or digit) and at most {longest} characters, got {id_prefix!r:.80}"
        )
    if len(id_prefix) > longest:
        raise ValueError(
            f"id_prefix must be at most {longest} characters (an id is at most 128), got "
            f"{len(id_prefix)}"
        )
    crop_t = resolve_crop(crop)
    names = None if class_names is None else check_class_names(class_names)
    if palette is not None and names is None:
        raise ValueError("a palette needs class_names (one colour per class)")
    pal = None if palette is None else _palette(palette, len(names))
    image_hw = tuple(int(s) for s in G.resolution)
    frame = _frame_size(image_hw, crop_t)
    if mask_resolution is not None:
        if (
            isinstance(mask_resolution, (str, bytes))
            or not isinstance(mask_resolution, Sequence)
            or len(mask_resolution) != 2
        ):
            raise ValueError(
                f"mask_resolution must be (height, width), got {mask_resolution!r:.80}"
            )
        frame = tuple(check_int(v, "mask_resolution", 1) for v in mask_resolution)
    reason = _frame_problem(frame, image_hw, crop_t)
    if reason:
        raise ValueError(reason)
    root = nonempty_path(out_dir, "out_dir")
    check_writable_folder(root)
    with folder_lock(root, "annotation folder"):  # a second writer would mix its samples in
        _check_resumable(root)
        # checked before any file: the manifest's reader refuses any other fingerprint
        fingerprint = check_fingerprint(G.fingerprint(), "the generator's fingerprint()")
        ids = [f"{id_prefix}{i:05d}" for i in range(num)]

        if (root / MANIFEST).exists():
            old = _read_manifest(root)
            ids, seeds, names, pal = _resume_settings(
                old,
                root,
                ids,
                seeds,
                names,
                pal,
                fingerprint=fingerprint,
                psi=float(truncation_psi),
                cutoff=truncation_cutoff,
                noise=noise,
                crop=crop_t,
                image_hw=image_hw,
                mask_hw=frame,
            )

        device = _module_device(G)
        z = z_from_seeds(seeds, G.z_dim, device=device)
        w_all = (
            torch.cat(
                [
                    G.mapping(z[s : s + batch_size], truncation_psi, truncation_cutoff)
                    for s in range(0, len(z), batch_size)
                ]
            )
            .float()
            .cpu()
        )

        samples = [
            {
                "id": sample_id,
                "image": f"images/{sample_id}.png",
                "mask": f"masks/{sample_id}.png",
                "seed": s,
                "latent": f"latents/{sample_id}.npy",
                "latent_kind": "w",
            }
            for sample_id, s in zip(ids, seeds)
        ]
        manifest = _manifest(
            fingerprint=fingerprint,
            description=G.describe(),
            class_names=names,
            palette=pal,
            psi=float(truncation_psi),
            cutoff=truncation_cutoff,
            center=None,
            noise=noise,
            crop=crop_t,
            image_resolution=list(image_hw),
            mask_resolution=list(frame),
            latent_kind="w",
            latent_shape=list(w_all.shape[1:]),
            samples=samples,
            note=_MASK_NOTE,
        )
        # the manifest first: a folder interrupted between the two holds it, and resumes
        write_json(root / MANIFEST, manifest)
        make_folder(root / "masks", "annotation folder")

        todo = [
            i for i, sid in enumerate(ids) if not _sample_complete(root, sid, w_all[i], image_hw)
        ]
        todo_set = set(todo)
        skipped = [sid for i, sid in enumerate(ids) if i not in todo_set]
        for i in todo:
            if (root / "masks" / f"{ids[i]}.png").exists():
                logger.warning("re-generating images/%s.png, which already has a mask", ids[i])
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            img, _ = G.synthesize(w_all[chunk].to(device), noise=noise)
            pixels = generator_to_uint8(img).cpu().numpy()
            for j, i in enumerate(chunk):
                write_npy(root / "latents" / f"{ids[i]}.npy", w_all[i].numpy())
                write_png(root / "images" / f"{ids[i]}.png", pixels[j], "RGB")
        written = [ids[i] for i in todo]
        logger.info(
            "%s: wrote %d images to annotate, %d already present", root, len(written), len(skipped)
        )
        return SampledFolder(root, list(ids), list(seeds), w_all, written, skipped)


def _resume_settings(
    old: dict[str, Any],
    root: Path,
    ids: list[str],
    seeds: list[int],
    names: list[str] | None,
    palette: list[tuple[int, int, int]] | None,
    *,
    fingerprint: str,
    psi: float,
    cutoff: int | None,
    noise: str,
    crop: tuple[int, int, int, int] | None,
    image_hw: tuple[int, int],
    mask_hw: tuple[int, int],
) -> tuple[list[str], list[int], list[str] | None, list[tuple[int, int, int]] | None]:
    """Check an existing sample folder was made the same way; merge its sample list."""
    problems = []
    old_crop = old.get("crop")
    old_crop = resolve_crop(old_crop) if isinstance(old_crop, dict) else None
    checks = [
        ("generator fingerprint", (old.get("generator") or {}).get("fingerprint"), fingerprint),
        ("truncation psi", (old.get("truncation") or {}).get("psi"), psi),
        ("truncation cutoff", (old.get("truncation") or {}).get("cutoff"), cutoff),
        ("noise", old.get("noise"), noise),
        ("crop", old_crop, crop),
        ("image_resolution", old.get("image_resolution"), list(image_hw)),
        ("mask_resolution", old.get("mask_resolution"), list(mask_hw)),
    ]
    for what, was, now in checks:
        if was != now:
            problems.append(f"{MANIFEST}: {what} was {was!r}, now {now!r}")
    center = (old.get("truncation") or {}).get("center")
    if center is not None:  # sample truncates towards the generator's average w
        problems.append(
            f"{MANIFEST}: truncation centre was {center!r}, now the generator's average w "
            "(its images would be regenerated away from their masks)"
        )
    old_samples = [s for s in old.get("samples") or [] if isinstance(s, dict)]
    seedless = [s.get("id") for s in old_samples if as_index(s.get("seed")) is None]
    if seedless:  # a folder of w latents (from_arrays): sample's manifest lists seeds
        problems.append(
            f"{MANIFEST}: samples {short_list(map(repr, seedless))} have no seed, which "
            "sample's folders record for every sample"
        )
        old_samples = [s for s in old_samples if s.get("id") not in set(seedless)]
    old_seed = {s.get("id"): s.get("seed") for s in old_samples}
    for sample_id, s in zip(ids, seeds):
        if sample_id in old_seed and old_seed[sample_id] != s:
            problems.append(
                f"{MANIFEST}: sample '{sample_id}' has seed {old_seed[sample_id]}, now {s}"
            )
    extra = [s for s in old_samples if s.get("id") not in set(ids)]
    # another --id-prefix or --seed over a folder: one image annotated twice
    problems += [
        f"{MANIFEST}: {text}"
        for text in _repeated_seed_problems(
            [s.get("seed") for s in extra] + list(seeds), [s.get("id") for s in extra] + ids
        )
    ]
    old_names = old.get("class_names")
    if names is None:
        names = old_names
    elif old_names is not None and old_names != names:
        problems.append(f"{MANIFEST}: class_names were {old_names}, now {names}")
    recorded = old.get("palette")
    if names and names == old_names and (recorded is not None or palette is not None):
        # masks may already be painted in the folder's colours (the default palette when
        # it records none, as `sample` lists them): keep them, refuse others
        old_palette = (
            _palette(recorded, len(names))
            if recorded is not None
            else manifest_palette(old, len(names))
        )
        if palette is None:
            palette = old_palette
        elif palette != old_palette:
            k = next(k for k, (a, b) in enumerate(zip(old_palette, palette)) if a != b)
            problems.append(
                f"{MANIFEST}: the palette's colour for class '{names[k]}' was "
                f"{old_palette[k]}, now {palette[k]}"
            )
    if problems:
        raise AnnotationError(
            problems, root, advice="use a new folder, or the settings this folder was made with"
        )
    if extra:
        logger.warning(
            "%s already holds %d more samples than asked for; keeping them", root, len(extra)
        )
        ids = ids + [s["id"] for s in extra]
        seeds = seeds + [int(s["seed"]) for s in extra]
    return ids, seeds, names, palette
