"""``make_augment``: the stream's ``augment=`` argument as one callable."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from . import adapters
from .adapters import AlbumentationsAugment, KorniaAugment
from .batch import AugmentFn, BatchAugment


def _accepts_three_args(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): trust the caller
        return True
    return True


def _is_from(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class (or a base) is defined in ``package``, without importing it."""
    return any(c.__module__.split(".")[0] == package for c in type(obj).__mro__)


_ACCEPTED = (
    'None or "none" (no augmentation); "default" (BatchAugment()); a BatchAugment, '
    "KorniaAugment or AlbumentationsAugment; a kornia.augmentation.AugmentationSequential "
    "(or single kornia augmentation); an albumentations Compose (or single transform); or a "
    "callable fn(images, masks, generator) -> (images, masks)"
)


def make_augment(spec: Any) -> AugmentFn | None:
    """Turn the stream's ``augment=`` argument into a callable ``fn(images, masks, generator)``.

    Accepted: ``None``/``"none"`` -> None; ``"default"`` -> :class:`BatchAugment` with its
    defaults; a kornia ``AugmentationSequential`` -> :class:`KorniaAugment` (a single kornia
    augmentation is wrapped in one with ``data_keys=["input", "mask"]``); an albumentations
    ``Compose``/``BaseCompose`` -> :class:`AlbumentationsAugment` (a single transform is
    wrapped in ``Compose``); any other callable taking ``(images, masks, generator)`` -> as is.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name == "none":
            return None
        if name == "default":
            return BatchAugment()
        raise ValueError(f"unknown augment name {spec!r}; accepted: {_ACCEPTED}")
    if isinstance(spec, (BatchAugment, KorniaAugment, AlbumentationsAugment)):
        return spec
    if _is_from(spec, "kornia"):
        if not adapters._KORNIA:
            raise adapters._missing(adapters._KORNIA, "a kornia augmentation")
        import kornia.augmentation as KA

        if isinstance(spec, KA.AugmentationSequential):
            return KorniaAugment(spec)
        if isinstance(spec, (KA.base._AugmentationBase, KA.ImageSequential)):
            return KorniaAugment(KA.AugmentationSequential(spec, data_keys=["input", "mask"]))
    if _is_from(spec, "albumentations"):
        if not adapters._ALBUMENTATIONS:
            raise adapters._missing(adapters._ALBUMENTATIONS, "an albumentations transform")
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
        import albumentations as A

        if isinstance(spec, A.BaseCompose):
            return AlbumentationsAugment(spec)
        if isinstance(spec, A.BasicTransform):
            return AlbumentationsAugment(A.Compose([spec]))
    if callable(spec) and _accepts_three_args(spec):
        return spec
    if callable(spec):
        raise TypeError(
            f"augment callable {spec!r} cannot be called as fn(images, masks, generator); "
            f"accepted: {_ACCEPTED}"
        )
    raise TypeError(f"augment must be one of: {_ACCEPTED}; got {type(spec).__name__}")
