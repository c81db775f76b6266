"""One fixed batch of candidates: generated, labeled, scored and encoded as PNG bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..conventions import IGNORE_INDEX
from ..fileio import png_bytes
from ..labeler import Labeler


def _label_batch(
    labeler: Labeler, seeds: list[int], desc: dict[str, Any], root: Path
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Images (B, 3, H, W) uint8, masks (B, H, W) and scores on the host; a non-finite
    score or a label size other than the recorded one is an error."""
    out = labeler.label(seeds)  # the whole fixed batch: same rounding as before
    scores = out.image_uncertainty.float().cpu().tolist()
    out.check_finite(scores)  # a broken model is an error, never kept garbage
    images = (out.images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    masks = out.masks.cpu()
    size = [int(masks.shape[-2]), int(masks.shape[-1])]
    label_size = desc["settings"]["label_size"]
    if label_size is not None and list(label_size) != size:
        raise ValueError(
            f"{root / 'dataset.json'} records label size {label_size}, the model now "
            f"produces {size}: resume with the same settings"
        )
    return images, masks, scores


def _sample_record(
    index: int, cid: str, seed: int, score: float, enc: dict[str, Any]
) -> dict[str, Any]:
    """A generated candidate's record (a journal line's fields) from its ``_encode`` result."""
    return {
        "index": index,
        "id": cid,
        "seed": seed,
        "uncertainty": score,
        "histogram": enc["histogram"],
        "ignored": enc["ignored"],
        "image_bytes": len(enc["image"]),
        "mask_bytes": len(enc["mask"]),
        "image_sha256": hashlib.sha256(enc["image"]).hexdigest(),
        "mask_sha256": hashlib.sha256(enc["mask"]).hexdigest(),
    }


def _mask_statistics(mask: np.ndarray, num_classes: int) -> dict[str, Any]:
    """A mask's class histogram (at least ``num_classes`` bins; more when it holds larger
    ids) and its number of ignored pixels, as ``index.jsonl`` records them."""
    valid = mask != IGNORE_INDEX
    hist = np.bincount(mask[valid].reshape(-1), minlength=num_classes)
    return {"histogram": [int(v) for v in hist], "ignored": int((~valid).sum())}


def _encode(image: torch.Tensor, mask: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """A sample's PNG bytes and mask statistics."""
    ids = mask.to(torch.uint8).numpy()
    return {
        "image": png_bytes(image.permute(1, 2, 0).contiguous().numpy()),
        "mask": png_bytes(ids),
        **_mask_statistics(ids, num_classes),
    }
