"""Batch augmentation of (images, masks) pairs, on whatever device the batch lives.

Images are float ``(B, 3, H, W)`` in [0, 1], masks int64 ``(B, H, W)`` with ``ignore_index``
(255) where a pixel carries no label. Every augmentation here moves image and mask together,
resamples the mask with nearest neighbour only (labels are never blended), and marks mask
pixels that come from outside the source frame with ``ignore_index``.

Three implementations share one calling convention, ``fn(images, masks, generator)``:

- :class:`BatchAugment`: the built-in ``augment="default"``. One affine warp per sample
  (flip, scale, translation, rotation) with ``affine_grid`` + ``grid_sample``, plus colour
  jitter on the image. All on the batch's device, parameters inspectable
  (:meth:`BatchAugment.sample_params`, :meth:`BatchAugment.apply`).
- :class:`KorniaAugment`: wraps a user's ``kornia.augmentation.AugmentationSequential``.
- :class:`AlbumentationsAugment`: wraps a user's ``albumentations.Compose``; CPU, one sample
  at a time, with a device round trip (see its docstring for the cost).

:func:`make_augment` turns the stream's ``augment=`` argument into one of these.

Randomness: every call takes a ``torch.Generator``. ``BatchAugment`` draws all its parameters
from it (a CPU generator gives the same parameters whatever device the batch is on). The
adapters draw one 63-bit seed from it per batch and seed the library's own random state with
that seed. ``generator=None`` uses torch's global RNG instead, so ``torch.manual_seed`` still
makes a run reproducible.

Modules: ``batch`` (``BatchAugment``, the shared checks and ``normalize``), ``adapters``
(kornia and albumentations), ``spec`` (``make_augment``).
"""

from .adapters import AlbumentationsAugment, KorniaAugment
from .batch import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentFn,
    AugmentParams,
    BatchAugment,
    check_normalize,
    normalize,
)
from .spec import make_augment

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AlbumentationsAugment",
    "AugmentFn",
    "AugmentParams",
    "BatchAugment",
    "KorniaAugment",
    "check_normalize",
    "make_augment",
    "normalize",
]
