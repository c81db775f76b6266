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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..balance import class_pixel_counts
from ..conventions import (
    IGNORE_INDEX,
    MAX_BATCH,
    check_bool,
    check_class_names,
    check_device,
    check_fingerprint,
    check_generator,
    check_index,
    check_int,
    check_names,
    check_number,
    check_truncation_psi,
    generator_to_uint8,
    keyword_hints,
    short_list,
)
from ..fileio import nonempty_path
from ..seeds import check_seeds, z_from_seeds
from .files import read_folder, write_folder
from .format import (
    _ID_PATTERN,
    CROPS,
    DEFAULT_TOLERANCE,
    FORMAT_VERSION,
    MANIFEST,
    NOISE_MODES,
    AnnotationError,
    _as_tensor,
    _bad_class_ids,
    _frame_problem,
    _is_int,
    _palette,
    resolve_crop,
)
from .truncation import _compare_centers, _module_device, _truncate_towards

logger = logging.getLogger(__name__)

__all__ = [
    "CROPS",
    "DEFAULT_TOLERANCE",
    "FORMAT_VERSION",
    "IGNORE_INDEX",
    "AnnotationError",
    "Annotations",
    "SampleCheck",
    "merge_header",
    "merge_header_problems",
    "resolve_crop",
]


@dataclass
class SampleCheck:
    """Result of regenerating one stored image: differences in 0..255 levels."""

    id: str
    image_file: str
    max_diff: int
    mean_diff: float
    ok: bool


@keyword_hints
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

    def __repr__(self) -> str:
        """A summary, not the tensors (the dataclass repr printed every mask)."""
        h, w = self.mask_resolution
        parts = [
            f"{len(self)} sample{'s' if len(self) != 1 else ''}",
            f"{self.num_classes} class{'es' if self.num_classes != 1 else ''}",
            f"masks {h}x{w}",
            f"latents {self.latent_kind}",
            f"psi {self.truncation_psi:g}",
        ]
        if self.crop is not None:
            parts.append(f"crop {tuple(self.crop)}")
        if self.images is not None:
            parts.append("images stored")
        if self.root is not None:
            parts.append(f"root={str(self.root)!r}")
        return f"Annotations({', '.join(parts)})"

    def __post_init__(self) -> None:
        problems: list[str] = []
        masks = _as_tensor(self.masks, "masks")
        if masks.ndim == 2:
            problems.append(f"masks must be (N, H, W); got one mask {tuple(masks.shape)}")
        elif masks.ndim != 3:
            problems.append(f"masks must be (N, H, W), got shape {tuple(masks.shape)}")
        if masks.dtype.is_floating_point or masks.dtype == torch.bool:
            problems.append(f"masks must hold integer class ids, got dtype {masks.dtype}")
        if masks.ndim == 3 and 0 in masks.shape[1:]:
            problems.append(
                f"masks are empty: (N, H, W) = {tuple(masks.shape)}; every mask needs at "
                "least one pixel (H, W >= 1)"
            )
        if problems:
            raise AnnotationError(problems)
        n = masks.shape[0]
        if n == 0:
            raise AnnotationError(["no samples: masks has N = 0"])

        names = self.class_names
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise AnnotationError([f"class_names must be a list of strings, got {names!r:.80}"])
        names = list(names)
        try:  # the other checks go on with the names as given, to report every problem
            check_class_names(names)
        except ValueError as err:
            problems.append(str(err))
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
        if seeds is not None and len(seeds) == n:
            problems.extend(_repeated_seed_problems(seeds, ids))
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

        try:  # numpy numbers too (np.float32(0.7) was called "not finite")
            self.truncation_psi = check_truncation_psi(self.truncation_psi)
        except ValueError as err:
            problems.append(str(err))
        cutoff = self.truncation_cutoff
        if cutoff is not None and (not _is_int(cutoff) or cutoff < 1):
            problems.append(f"truncation_cutoff must be None or an int >= 1, got {cutoff!r}")
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

        try:
            check_fingerprint(self.generator_fingerprint, "generator_fingerprint")
        except ValueError as err:
            problems.append(str(err))
        if problems:
            raise AnnotationError(problems)

        self.masks, self.class_names, self.ids = masks, names, ids
        self.w, self.z, self.seeds, self.truncation_center = w, z, seeds, center
        self.truncation_psi = float(self.truncation_psi)
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
        try:
            names = check_names(class_names)
        except ValueError as err:
            raise AnnotationError([str(err)]) from None
        return cls(
            masks=masks,
            class_names=names,
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

    def class_statistics(self) -> dict[str, list[int] | int]:
        """How much of each class the masks hold: ``pixels`` (K counts), ``images`` (K
        counts of masks holding at least one pixel of the class), ``ignored`` (pixels at
        255) and ``total`` (all mask pixels). What decides whether a class can be learnt:
        a class in no mask is never predicted, and one in one or two images rarely well."""
        counts = class_pixel_counts(self.masks, self.num_classes)
        return {
            "pixels": [int(v) for v in counts.sum(0)],
            "images": [int(v) for v in (counts > 0).sum(0)],
            "ignored": int((self.masks == IGNORE_INDEX).sum()),
            "total": int(self.masks.numel()),
        }

    @property
    def latent_kind(self) -> str:
        """What the latents are stored as: "w", "z" or "seed"."""
        return "w" if self.w is not None else "z" if self.z is not None else "seed"

    def _mask_file_at(self, i: int, ids: Sequence[str] | None = None) -> str:
        if self.files is not None and self.files[i].get("mask"):
            return str(self.files[i]["mask"])
        return f"masks/{(ids or self.ids)[i]}.png"

    def _sample_index(self, i: Any) -> int:
        return check_index(i, len(self), "sample", "this annotation set")

    def image_file(self, i: int) -> str:
        """File name (relative to the folder) of sample i's image."""
        i = self._sample_index(i)
        if self.files is not None and self.files[i].get("image"):
            return str(self.files[i]["image"])
        return f"images/{self.ids[i]}.png"

    def mask_file(self, i: int) -> str:
        """File name (relative to the folder) of sample i's mask."""
        return self._mask_file_at(self._sample_index(i))

    def latent_file(self, i: int) -> str:
        """File name (relative to the folder) of sample i's latent."""
        i = self._sample_index(i)
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
        check_generator(G)
        device = check_device(device) or _module_device(G)
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
        batch_size = check_int(batch_size, "batch_size", 1, MAX_BATCH)
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
        check_generator(G)
        batch_size = check_int(batch_size, "batch_size", 1, MAX_BATCH)
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

    def take(self, index: Sequence[int]) -> Annotations:
        """The samples at ``index`` (in that order) as an annotation set of their own:
        masks, latents, seeds, images, ids and files cut alike, everything else kept."""
        if isinstance(index, (int, str, bytes)) or not isinstance(index, Iterable):
            raise TypeError(f"take() wants a sequence of sample indices, got {index!r}")
        rows = [check_int(i, "take() index") for i in index]
        for i in rows:
            if not 0 <= i < len(self):
                raise IndexError(f"sample index {i} is out of range for {len(self)} samples")

        def cut(values: Any) -> Any:
            if values is None:
                return None
            return values[rows] if isinstance(values, torch.Tensor) else [values[i] for i in rows]

        fields = ("masks", "w", "z", "seeds", "images", "ids", "files")
        return Annotations(
            **{**self._fields(), **{name: cut(getattr(self, name)) for name in fields}}
        )

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    # ----------------------------------------------------------- validate
    @classmethod
    def merge(cls, *parts: Annotations) -> Annotations:
        """One annotation set from several (e.g. a first folder and suggested samples).

        The parts must agree on everything that makes their samples one training set:
        class names, generator fingerprint, truncation, noise, crop, mask size and
        whether images are stored; ids must be distinct, and no seed (nor an identical
        stored w or z) may appear in two parts: that image would be annotated twice.
        Differences are reported together, each naming the part (its folder when loaded
        from one) and the field (the shared latents: both parts and ids). The comparison
        of the fields is :func:`merge_header_problems`, which ``suggest`` runs before
        scoring its pool.

        The merged set keeps the latent kinds (w, z, seeds) that every part stores, so a
        folder of seeds (e.g. a preset's) merges with sampled or suggested folders (w and
        seeds): their w is left out, logged, since it regenerates from the seed with the
        shared generator and truncation. Parts that share no latent kind are refused.

        Palettes only colour masks for display, so they may differ: the merged set keeps
        the first palette given (parts without one take no part), with a warning naming
        the parts whose palettes differ from it.
        """
        if not parts:
            raise AnnotationError(["merge needs at least one annotation set"])
        bad = [type(p).__name__ for p in parts if not isinstance(p, Annotations)]
        if bad:
            raise AnnotationError([f"merge takes Annotations, got {bad}"])
        first = parts[0]

        def name(i: int) -> str:
            return str(parts[i].root) if parts[i].root is not None else f"part {i}"

        names = [name(i) for i in range(len(parts))]
        problems = [
            text if i is None else f"{names[i]}: {text}"
            for i, text in merge_header_problems([merge_header(p) for p in parts], names)
        ]
        kinds = {
            kind: all(getattr(p, kind) is not None for p in parts) for kind in ("w", "z", "seeds")
        }
        problems += _shared_latent_problems(parts, names)
        ids = [i for p in parts for i in p.ids]
        owners: dict[str, list[int]] = {}
        for k, part in enumerate(parts):
            for sample_id in part.ids:
                owners.setdefault(sample_id, []).append(k)
        dup = sorted(i for i, held in owners.items() if len(held) > 1)
        if dup:
            sharing = sorted({k for i in dup for k in owners[i]})
            problems.append(
                f"ids {short_list(dup)} appear in more than one part "
                f"({', '.join(name(k) for k in sharing)}): sample the new part with another "
                "id prefix (dgan-data sample/suggest --id-prefix)"
            )
        if problems:
            raise AnnotationError(problems)

        for kind in ("w", "z"):
            holders = [name(i) for i, p in enumerate(parts) if getattr(p, kind) is not None]
            if holders and not kinds[kind]:
                logger.warning(
                    "merge keeps the latents every part stores (%s): the %s stored in %s is "
                    "left out (it regenerates from them)",
                    ", ".join(k for k, shared in kinds.items() if shared),
                    kind,
                    ", ".join(holders),
                )

        palettes = [(i, p.palette) for i, p in enumerate(parts) if p.palette is not None]
        differ = [name(i) for i, pal in palettes[1:] if pal != palettes[0][1]]
        if differ:
            keeper = name(palettes[0][0])
            logger.warning(
                "merge: the palette of %s differs from %s's for the same classes; the merged "
                "set keeps %s's palette (palettes only colour masks for display)",
                ", ".join(differ),
                keeper,
                keeper,
            )

        def cat(attr: str) -> torch.Tensor | None:
            values = [getattr(p, attr) for p in parts]
            return None if not all(v is not None for v in values) else torch.cat(values)

        return cls(
            masks=torch.cat([p.masks for p in parts]),
            class_names=list(first.class_names),
            w=cat("w"),
            z=cat("z"),
            seeds=[s for p in parts for s in p.seeds] if kinds["seeds"] else None,
            truncation_psi=first.truncation_psi,
            truncation_cutoff=first.truncation_cutoff,
            truncation_center=first.truncation_center,
            noise=first.noise,
            images=cat("images"),
            generator_fingerprint=first.generator_fingerprint,
            generator_description=first.generator_description,
            crop=first.crop,
            palette=palettes[0][1] if palettes else None,
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
        check_generator(G)
        tolerance = check_int(tolerance, "tolerance", 0, 255)
        if mean_tolerance is not None:
            mean_tolerance = check_number(mean_tolerance, "mean_tolerance", low=0.0, high=255.0)
        batch_size = check_int(batch_size, "batch_size", 1, MAX_BATCH)
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
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the annotation folder (see the module docstring); returns the manifest path.

        Every file is written to a temporary name in its folder and renamed into place,
        the manifest last. A folder that holds a ``manifest.json`` already is refused
        unless ``overwrite`` (then files of samples it no longer lists stay, unlisted).
        """
        return write_folder(
            self, nonempty_path(folder, "folder"), overwrite=check_bool(overwrite, "overwrite")
        )

    @classmethod
    def load(cls, folder: str | os.PathLike, *, skip_unannotated: bool = False) -> Annotations:
        """Read and check an annotation folder.

        Every problem found (missing or corrupt files, wrong sizes, class ids out of
        range, wrong latent shapes, bad manifest fields, duplicate ids) is collected
        and reported in one :class:`AnnotationError`, each naming its file.
        ``skip_unannotated=True`` loads only the samples whose mask file exists (a
        folder annotated part of the way), with a warning naming the others; every
        other problem is still an error.
        """
        root = nonempty_path(folder, "folder")
        fields = read_folder(root, check_bool(skip_unannotated, "skip_unannotated"))
        try:
            return cls(**fields)
        except AnnotationError as err:
            raise AnnotationError(
                [f"{MANIFEST}: {p}" for p in err.problems], root, advice=err.advice
            ) from None


def _same_center(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Whether two stored centres truncate alike: a (w_dim,) centre is the same as a
    (rows, w_dim) one whose every row equals it."""
    if a is None or b is None:
        return a is None and b is None
    if a.ndim == 1 and b.ndim == 2:
        a = a.expand_as(b)
    elif b.ndim == 1 and a.ndim == 2:
        b = b.expand_as(a)
    return a.shape == b.shape and bool(torch.equal(a, b))


#: Fields every part of :meth:`Annotations.merge` must hold equal, in the order reported.
_MERGE_FIELDS = (
    "class_names",
    "generator fingerprint",
    "truncation_psi",
    "truncation_cutoff",
    "noise",
    "crop",
    "mask resolution",
    "stored images",
    "image resolution",
)


def merge_header(ann: Annotations) -> dict[str, Any]:
    """What :meth:`Annotations.merge` compares between parts: the fields of
    ``_MERGE_FIELDS``, the latent kinds stored (``"latents"``), ``"truncation_center"``
    and the per-sample ``"w shape"`` (None without w). A header built by hand (e.g. of a
    folder about to be written) may leave out a field it cannot know yet: it is not
    compared."""
    return {
        "class_names": list(ann.class_names),
        "generator fingerprint": ann.generator_fingerprint,
        "truncation_psi": ann.truncation_psi,
        "truncation_cutoff": ann.truncation_cutoff,
        "noise": ann.noise,
        "crop": ann.crop,
        "mask resolution": tuple(ann.mask_resolution),
        "stored images": ann.images is not None,
        # parts built without a generator fingerprint can differ here (torch.cat failed)
        "image resolution": None if ann.images is None else tuple(ann.images.shape[-2:]),
        "latents": tuple(k for k in ("w", "z", "seeds") if getattr(ann, k) is not None),
        "truncation_center": ann.truncation_center,
        "w shape": None if ann.w is None else tuple(ann.w.shape[1:]),
    }


def merge_header_problems(
    headers: Sequence[dict[str, Any]], names: Sequence[str]
) -> list[tuple[int | None, str]]:
    """Why parts with these :func:`merge_header` headers (named ``names``) cannot be
    merged: ``(part index, text)`` for a problem of one part (compared with part 0), or
    ``(None, text)`` for one of all the parts. Empty when they merge."""
    problems: list[tuple[int | None, str]] = []
    first = headers[0]
    for field_name in _MERGE_FIELDS:
        if field_name not in first:
            continue
        want = first[field_name]
        for i, header in enumerate(headers[1:], 1):
            if field_name in header and header[field_name] != want:
                problems.append(
                    (i, f"{field_name} {header[field_name]!r} differs from {names[0]}'s {want!r}")
                )
    shared = {k for k in ("w", "z", "seeds") if all(k in h["latents"] for h in headers)}
    if not shared:
        stored = "; ".join(
            f"{names[i]}: {', '.join(h['latents']) or 'none'}" for i, h in enumerate(headers)
        )
        problems.append(
            (None, f"latent kind: no kind of latent is stored by every part ({stored})")
        )
    elif "w" in shared:
        shapes = {h["w shape"] for h in headers}
        if len(shapes) > 1:
            problems.append((None, f"w latents have different shapes {sorted(shapes)}"))
    if "w" not in shared:  # z or seeds are mapped towards the centre: it must be one
        c0 = first["truncation_center"]
        for i, header in enumerate(headers[1:], 1):
            c = header["truncation_center"]
            if not _same_center(c0, c):
                problems.append(
                    (
                        i,
                        f"truncation_center {_describe_center(c)} differs from {names[0]}'s "
                        f"{_describe_center(c0)}",
                    )
                )
    return problems


def _describe_center(center: torch.Tensor | None) -> str:
    if center is None:
        return "None (the generator's average w)"
    return f"<stored {tuple(center.shape)} centre>"


def _repeated_seed_problems(seeds: Sequence[int], ids: Sequence[str]) -> list[str]:
    """A seed under two ids of one set: the same image would be annotated (and trained
    on) twice, as :func:`_shared_latent_problems` says of two parts."""
    first_id: dict[int, str] = {}
    twice = [
        f"seed {seed} (ids {first_id[seed]} and {sample_id})"
        for seed, sample_id in zip(seeds, ids)
        if first_id.setdefault(seed, sample_id) != sample_id
    ]
    if not twice:
        return []
    return [
        "the same seed appears under two ids, so one image would be annotated twice: "
        f"{short_list(twice, 4)}; leave one of them out"
    ]


def _latent_rows(ann: Annotations, kind: str) -> list[Any]:
    """One hashable key per sample for ``kind``: the seed, or the latent's bytes."""
    if kind == "seeds":
        return list(ann.seeds)
    values = getattr(ann, kind).contiguous().numpy()
    return [row.tobytes() for row in values]


def _shared_latent_problems(parts: Sequence[Annotations], names: Sequence[str]) -> list[str]:
    """The same seed, or an identical stored w or z, in two parts: the same image would
    be annotated (and trained on) twice under two ids."""
    seen: dict[tuple[str, Any], tuple[int, str]] = {}
    pairs: dict[tuple[int, str, int, str], str] = {}
    for k, part in enumerate(parts):
        for kind in ("seeds", "w", "z"):
            if getattr(part, kind) is None:
                continue
            for sample_id, key in zip(part.ids, _latent_rows(part, kind)):
                owner = seen.setdefault((kind, key), (k, sample_id))
                if owner[0] != k:
                    what = f"seed {key}" if kind == "seeds" else f"the same {kind}"
                    pairs.setdefault((owner[0], owner[1], k, sample_id), what)
    if not pairs:
        return []
    found = [
        f"{what} in {names[a]} (id {ida}) and {names[b]} (id {idb})"
        for (a, ida, b, idb), what in pairs.items()
    ]
    return [
        f"the same latent appears in more than one part, so one image would be annotated "
        f"twice: {short_list(found, 4)}; leave one of them out"
    ]
