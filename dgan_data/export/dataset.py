"""Reading a finished export back as a map-style dataset."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..augment.adapters import (
    albumentations_sample,
    check_albumentations_masks,
    seed_compose,
    unit_range_images,
)
from ..augment.batch import _draw_seed
from ..conventions import IGNORE_INDEX, check_index, keyword_hints, short_list, short_repr
from ..fileio import why_not_a_file
from .records import (
    ExportDamagedError,
    _check_layout,
    _description_path,
    _Plan,
    _read_description,
    _root,
    description_problem,
)
from .verify import _final_index

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- read back
@keyword_hints
class ExportedDataset(Dataset):
    """A finished export as a map-style dataset of ``(image, mask)``.

    ``image``: float32 (3, H, W) in [0, 1]; ``mask``: int64 (H, W), 255 = ignore.
    ``albumentations``: an ``albumentations.Compose`` applied per sample to the uint8
    HWC image and the mask (so masks stay integer and aligned; a transform whose
    ``mask_interpolation`` is not nearest is refused, it would blend ids); ``transform``: a
    callable ``(image, mask) -> (image, mask)`` applied to the tensors afterwards.
    Every line of ``index.jsonl`` is checked (schema, paths inside the folder, no
    symlink leading out); :func:`verify_export` checks the files' contents too.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
        albumentations: Any = None,
    ) -> None:
        self.root = _root(root)
        desc_path = _description_path(self.root)
        _check_layout(self.root)
        self.info = _read_description(desc_path)
        if self.info["status"] != "complete":
            raise ValueError(
                f"{desc_path}: the export is not complete (status {self.info['status']!r}); "
                "rerun the export command to finish it"
            )
        edited = description_problem(desc_path, self.info)
        if edited is not None:  # a renamed class or palette entry was read in silence
            raise ExportDamagedError(edited)
        if self.info["selection"].get("description_sha256") is None:
            logger.warning(
                "%s records no sha256 of its own content (an export made before dgan_data "
                "recorded it, or the field was deleted): edits of its class names or "
                "palette cannot be detected",
                desc_path,
            )
        index_path = self.root / "index.jsonl"
        lines = _final_index(self.root, _Plan.of(self.info), self.info["selection"])
        for n, e in lines:
            for key in ("image", "mask"):
                why = why_not_a_file(self.root / e[key])  # a link to nothing is named as one
                if why is not None:
                    raise FileNotFoundError(
                        f"{self.root / e[key]} {why} (listed on line {n} of {index_path})"
                    )
        self.entries = [e for _, e in lines]
        self.class_names: list[str] = list(self.info["classes"])
        self.palette = np.asarray(self.info["palette"], dtype=np.uint8)
        size = self.info["label_size"]
        self.label_size = tuple(size) if size is not None else None
        if albumentations is not None:
            check_albumentations_masks(albumentations, "ExportedDataset(albumentations=...)")
        if transform is not None and not callable(transform):  # not at the first item
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.transform = transform
        self.albumentations = albumentations

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        size = "" if self.label_size is None else f", label_size={self.label_size}"
        extra = "".join(
            f", {name}={short_repr(value)}"
            for name, value in (
                ("transform", self.transform),
                ("albumentations", self.albumentations),
            )
            if value is not None
        )
        return (
            f"ExportedDataset({str(self.root)!r}, {len(self)} samples, "
            f"{len(self.class_names)} classes{size}{extra})"
        )

    def _load(self, rel: str, mode: str) -> np.ndarray:
        path = self.root / rel
        try:
            with Image.open(path) as im:
                if im.mode != mode:
                    raise ValueError(f"{path}: expected a {mode} PNG, got mode {im.mode}")
                # the header's size first: a damaged file is refused before it is decoded
                if self.label_size is not None and im.size[::-1] != self.label_size:
                    raise ValueError(
                        f"{path}: size {im.size[::-1]} differs from the label size "
                        f"{self.label_size} in dataset.json"
                    )
                arr = np.array(im)
        except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{path}: cannot read the PNG ({exc})") from exc
        return arr

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.entries[check_index(i, len(self), "item", "this export")]
        image = self._load(e["image"], "RGB")
        mask = self._load(e["mask"], "L")
        mask_path = self.root / e["mask"]
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{mask_path}: size {mask.shape} differs from its image "
                f"{self.root / e['image']} ({image.shape[:2]}, height x width)"
            )
        k = len(self.class_names)
        if int(mask.max(initial=0)) >= k:  # ids from another export, or a damaged file
            bad = np.unique(mask[(mask >= k) & (mask != IGNORE_INDEX)]).tolist()
            if bad:
                raise ValueError(
                    f"{mask_path}: class ids {short_list(bad)} out of range (dataset.json: "
                    f"{k} classes, 0..{k - 1}, {IGNORE_INDEX} = ignore); "
                    f"`dgan-data export --verify --out {self.root}` lists every damaged file"
                )
        if self.albumentations is not None:
            # out-of-frame pixels become 255 (not fill_mask's class 0); the image must
            # stay uint8 or float in [0, 1] (not A.Normalize, not divided twice)
            # one seed per sample from torch's RNG, which DataLoader seeds per worker and
            # epoch: the Compose's own state was copied into every worker, so each worker
            # (and each epoch) repeated the same transforms
            seed_compose(self.albumentations, _draw_seed(None))
            image, labels = albumentations_sample(self.albumentations, image, mask, IGNORE_INDEX)
            img_t = unit_range_images(image[None], self.albumentations)[0].permute(2, 0, 1)
            mask_t = torch.from_numpy(labels)
        else:
            img_t = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
            mask_t = torch.from_numpy(mask).long()
        img_t, mask_t = img_t.contiguous(), mask_t.contiguous()
        if self.transform is not None:
            return self.transform(img_t, mask_t)
        return img_t, mask_t
