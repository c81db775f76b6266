"""Endless augmented labeled batches from a fixed set or from the toy renderer.

:func:`real_batches` serves a fixed labeled set (the few-shot baseline),
:func:`render_batches` the toy renderer's labeled renders (the fully supervised
reference), both through the same augmentation as the stream, so every arm of a
comparison sees the same augmentation. Seeded: the same seed gives the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..augment import BatchAugment, make_augment
from ..conventions import check_device, check_int, keyword_hints
from ..seeds import check_seed, derive_seed
from ..toy.render import (
    MIN_SIZE,
    Variation,
    render_faces,
    render_split,
    resolve_variation,
    split_seeds,
)

__all__ = ["ResumableBatches", "real_batches", "render_batches", "render_labeled"]
#: Seed purpose of the per-batch augmentation draws.
_SEED_AUGMENT = 0xA06


# ------------------------------------------------------------ labeled batches
def _index_batches(n: int, batch_size: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """Endless (batch number, indices): epoch-wise random permutations of 0..n-1, seeded by
    (seed, epoch), batches running on across epoch boundaries (every index once per epoch)."""
    if n < 1:
        raise ValueError("cannot draw batches from an empty set")
    batch_size = check_int(batch_size, "batch_size", 1)
    epoch, pos, number = 0, 0, 0
    perm = np.random.default_rng(derive_seed(seed, 0xE90C, epoch)).permutation(n)
    while True:
        take: list[np.ndarray] = []
        need = batch_size
        while need > 0:
            if pos == n:
                epoch, pos = epoch + 1, 0
                perm = np.random.default_rng(derive_seed(seed, 0xE90C, epoch)).permutation(n)
            chunk = perm[pos : pos + need]
            take.append(chunk)
            pos += len(chunk)
            need -= len(chunk)
        yield number, np.concatenate(take)
        number += 1


def _augmenter(augment: Any, seed: int) -> Callable[..., Any]:
    """``apply(images, masks, number, probs=None)``: batch ``number``'s augmentation, its
    draws seeded by (seed, number); with ``probs`` (soft labels) it returns them moved
    too, by the same draws (a BatchAugment)."""
    fn = make_augment(augment)

    def apply(
        images: torch.Tensor, masks: torch.Tensor, number: int, probs: torch.Tensor | None = None
    ) -> Any:
        if fn is None:
            return (images, masks) if probs is None else (images, masks, probs)
        g = torch.Generator().manual_seed(derive_seed(seed, _SEED_AUGMENT, number))
        if probs is None:
            return fn(images, masks, g)
        if not isinstance(fn, BatchAugment):
            raise ValueError(
                f"soft labels need augment None or a BatchAugment (it moves them), got {augment!r}"
            )
        return fn.with_probabilities(images, masks, probs, g)

    return apply


class ResumableBatches:
    """A seeded batch source whose position a training checkpoint can keep.

    ``make(start_batch)`` returns the endless batches from batch number ``start_batch``
    on (:func:`real_batches` or :func:`render_batches` with that argument). Iterating
    counts the batches handed out; ``state_dict()`` is that count and
    ``load_state_dict()`` makes the next iteration begin there, so a training resumed
    from a checkpoint (``train_segmentation(resumable_source=...)``) draws exactly the
    batches the interrupted one would have drawn next."""

    def __init__(self, make: Callable[[int], Iterator[Any]]) -> None:
        self._make = make
        self._start = 0
        self._taken = 0

    def __iter__(self) -> Iterator[Any]:
        self._taken = self._start
        for batch in self._make(self._start):
            self._taken += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"batches": self._taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        batches = state.get("batches") if isinstance(state, dict) else None
        self._start = check_int(batches, "the saved batch position's 'batches'", 0)
        self._taken = self._start


#: How far float images may stray outside [0, 1] (rounding) before they are refused.
_RANGE_SLACK = 1e-3


def _check_labeled_set(
    images: Any, masks: Any, where: str, probs: torch.Tensor | None = None
) -> None:
    """A fixed labeled set's rule (what :func:`real_batches` serves): ``images`` (N, 3, H,
    W) float in [0, 1] (finite) or uint8, ``masks`` (N, H, W) integer class ids, on the
    same N, H, W. Anything else is a ValueError naming ``where``, before any cast (a
    ``.long()`` would truncate float masks such as ``ToTensor()``'s ids / 255)."""
    if not isinstance(images, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise ValueError(
            f"{where}: images and masks must be torch tensors, got {type(images).__name__} "
            f"and {type(masks).__name__}"
        )
    if images.dim() != 4 or images.shape[1] != 3 or masks.dim() != 3:
        hint = ""
        if masks.dim() == 4 and masks.shape[1] == 1:
            hint = " (masks with a channel dimension: pass masks[:, 0])"
        elif images.dim() == 4 and images.shape[-1] == 3:
            hint = " (channels-last images: pass images.permute(0, 3, 1, 2))"
        raise ValueError(
            f"{where}: expected images (N, 3, H, W) and masks (N, H, W), got "
            f"{tuple(images.shape)} and {tuple(masks.shape)}{hint}"
        )
    if images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(
            f"{where}: images {tuple(images.shape)} and masks {tuple(masks.shape)} differ"
        )
    if masks.is_floating_point() or masks.is_complex():
        raise ValueError(
            f"{where}: masks must hold integer class ids, got dtype {masks.dtype} (float masks "
            "such as ToTensor()'s ids / 255 would be truncated; convert them to class ids)"
        )
    if images.is_floating_point():
        if images.numel():
            finite = torch.isfinite(images)
            if not bool(finite.all()):
                raise ValueError(
                    f"{where}: images hold {int((~finite).sum())} non-finite values (NaN or inf)"
                )
            lo, hi = (float(v) for v in torch.aminmax(images.detach().float()))
            if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
                raise ValueError(
                    f"{where}: float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                    "(0..255 values: pass uint8 or images / 255; generator output in [-1, 1]: "
                    "pass (x + 1) / 2)"
                )
    elif images.dtype != torch.uint8:
        raise ValueError(
            f"{where}: images must be float in [0, 1] or uint8, got dtype {images.dtype}"
        )
    if probs is not None:
        if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
            raise ValueError(f"{where}: probs must be a float tensor (N, K, H, W)")
        if probs.dim() != 4 or probs.shape[:1] + probs.shape[2:] != masks.shape:
            raise ValueError(
                f"{where}: probs must be (N, K, H, W) for masks {tuple(masks.shape)}, got "
                f"{tuple(probs.shape)}"
            )


@keyword_hints
def real_batches(
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int,
    augment: Any = "default",
    seed: int = 0,
    device: torch.device | str | None = None,
    probs: torch.Tensor | None = None,
    start_batch: int = 0,
) -> Iterator[Any]:
    """Endless augmented batches from a fixed labeled set (the few-shot baseline).

    ``images``: (N, 3, H, W) float in [0, 1] or uint8 (divided by 255); ``masks``: (N,
    H, W) integer class ids. Each epoch visits every image once in a random order
    (seeded by (seed, epoch)); ``augment`` takes the stream's specs (``"default"`` =
    :class:`~dgan_data.augment.BatchAugment`), its random draws seeded per batch, so
    the sequence is reproducible. ``probs`` (N, K, H, W): soft labels (a saved stream's);
    batches are then dicts with ``image``, ``mask`` and ``probs``, moved by the same
    draws (``augment`` None or a BatchAugment). ``start_batch``: begin with that batch
    number, exactly where a source that already gave that many batches goes on (the
    batches are seeded by their number, so skipping costs only index permutations).

    Everything is checked when called, not at the first batch: float masks, integer
    images other than uint8, float images outside [0, 1] or not finite, a
    ``batch_size`` that is not an int >= 1 are a ValueError.
    """
    _check_labeled_set(images, masks, "real_batches", probs)
    if images.shape[0] < 1:
        raise ValueError("real_batches: cannot draw batches from an empty set (N = 0)")
    batch_size = check_int(batch_size, "batch_size", 1)
    seed = check_seed(seed)
    start_batch = check_int(start_batch, "start_batch", 0)
    dev = check_device(device) or images.device
    aug = _augmenter(augment, seed)
    return _real_batches(images, masks, batch_size, seed, dev, probs, aug, start_batch)


def _real_batches(
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int,
    seed: int,
    dev: torch.device,
    probs: torch.Tensor | None,
    aug: Callable[..., Any],
    start_batch: int = 0,
) -> Iterator[Any]:
    for number, idx in _index_batches(images.shape[0], batch_size, seed):
        if number < start_batch:
            continue
        sel = torch.as_tensor(idx)
        img = images[sel].to(dev)
        img = img.float() / 255 if img.dtype == torch.uint8 else img.float()
        mask = masks[sel].to(dev).long()
        if probs is None:
            yield aug(img, mask, number)
        else:
            img, mask, prob = aug(img, mask, number, probs[sel].to(dev))
            yield {"image": img, "mask": mask, "probs": prob}


def render_labeled(
    split: str,
    count: int,
    start: int = 0,
    size: int = 64,
    batch_size: int = 256,
    variation: str | Variation = "base",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` toy renders of ``split`` from its ``start``-th seed: float images in
    [0, 1] (N, 3, size, size) and int64 masks (N, size, size), exact by construction;
    ``variation`` names the toy world (:data:`dgan_data.toy.render.VARIATIONS`).
    ``count`` is an int >= 1, ``size`` an int >= 16 (the renderer's
    :data:`~dgan_data.toy.render.MIN_SIZE`), ``start`` an int >= 0."""
    count = check_int(count, "count", 1)
    start = check_int(start, "start", 0)
    size = check_int(size, "size", MIN_SIZE)
    batch_size = check_int(batch_size, "batch_size", 1)
    resolve_variation(variation)
    images, masks = [], []
    renders = render_split(
        split, start, count, batch_size=batch_size, size=size, variation=variation
    )
    for _, img, mask in renders:
        images.append(img)
        masks.append(mask)
    return torch.cat(images), torch.cat(masks)


@keyword_hints
def render_batches(
    split: str,
    batch_size: int,
    count: int = 5000,
    start: int = 0,
    augment: Any = "default",
    seed: int = 0,
    size: int = 64,
    device: torch.device | str | None = None,
    variation: str | Variation = "base",
    start_batch: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless augmented batches of toy renders with exact masks (the fully supervised
    reference): the ``count`` seeds of ``split`` from ``start``, visited epoch by epoch in
    a seeded random order, each batch rendered on demand (about 5 ms per 64 px image on
    one core, so nothing is held in memory) and augmented like :func:`real_batches`
    (``start_batch`` too: skipped batches are not rendered); ``variation`` names the toy
    world. The arguments are checked when called, not at
    the first batch: ``size`` is an int >= 16 and ``variation`` a world name of
    :data:`~dgan_data.toy.render.VARIATIONS` or a ``Variation``."""
    batch_size = check_int(batch_size, "batch_size", 1)
    count = check_int(count, "count", 1)
    start = check_int(start, "start", 0)
    size = check_int(size, "size", MIN_SIZE)
    seed = check_seed(seed)
    start_batch = check_int(start_batch, "start_batch", 0)
    resolve_variation(variation)
    seeds = split_seeds(split, start, count)
    aug = _augmenter(augment, seed)
    dev = check_device(device) or torch.device("cpu")
    return _render_batches(seeds, batch_size, seed, size, dev, variation, aug, start_batch)


def _render_batches(
    seeds: Any,
    batch_size: int,
    seed: int,
    size: int,
    dev: torch.device,
    variation: str | Variation,
    aug: Callable[..., Any],
    start_batch: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for number, idx in _index_batches(len(seeds), batch_size, seed):
        if number < start_batch:
            continue
        chunk = [seeds[int(i)] for i in idx]
        images, masks = render_faces(chunk, size=size, variation=variation)
        yield aug(images.to(dev), masks.to(dev), number)
