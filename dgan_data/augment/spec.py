"""``make_augment``: the stream's ``augment=`` argument as one callable."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import torch

from ..conventions import keyword_hints
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


def _signature(fn: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"


def _short(obj: Any) -> str:
    """``obj``'s repr on one line, cut at 120 characters (a pipeline's repr can be long)."""
    text = " ".join(repr(obj).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _is_from(obj: Any, package: str) -> bool:
    """Whether ``obj``'s class (or a base) is defined in ``package``, without importing it;
    for a class, the class itself (``augment=KA.RandomAffine`` without parentheses)."""
    mro = obj.__mro__ if isinstance(obj, type) else type(obj).__mro__
    return any(c.__module__.split(".")[0] == package for c in mro)


_ACCEPTED = (
    'None or "none" (no augmentation); "default" (BatchAugment()); a BatchAugment, '
    "KorniaAugment or AlbumentationsAugment; a kornia.augmentation.AugmentationSequential "
    "(or single kornia augmentation); an albumentations Compose (or single transform); or a "
    "callable fn(images, masks, generator) -> (images, masks)"
)


def _torchvision_refusal(spec: Any) -> TypeError:
    """The refusal of a torchvision transform (or class): it belongs in ``transform=``."""
    return TypeError(
        f"augment={_short(spec)} is a torchvision transform: pass it as transform= (it "
        "gets each item's tv_tensors Image and Mask, so masks move with the images); "
        f"augment= takes: {_ACCEPTED}"
    )


@keyword_hints
def make_augment(spec: Any) -> AugmentFn | None:
    """Turn the stream's ``augment=`` argument into a callable ``fn(images, masks, generator)``.

    Accepted: ``None``/``"none"`` -> None; ``"default"`` -> :class:`BatchAugment` with its
    defaults; a kornia ``AugmentationSequential`` -> :class:`KorniaAugment` (a single kornia
    augmentation, an ``ImageSequential`` or an auto-augment policy such as ``RandAugment``
    is wrapped in one with ``data_keys=["input", "mask"]``; mix augmentations and other
    kornia objects are refused: class-id masks cannot follow them); an albumentations
    ``Compose``/``BaseCompose`` -> :class:`AlbumentationsAugment` (a single transform is
    wrapped in ``Compose``); any other callable taking ``(images, masks, generator)`` -> as is
    (for a ``torch.nn.Module``, its ``forward`` must take them). torchvision transforms
    are refused with a TypeError pointing to the stream's ``transform=``, as is any
    callable or module that cannot take three arguments, naming it, and a class passed
    without instantiating it (``augment=KA.RandomAffine``).
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
    if isinstance(spec, type):
        # a class, not an instance: calling it builds a transform instead of returning
        # (images, masks), which failed deep inside kornia at the first batch
        if _is_from(spec, "torchvision"):
            raise _torchvision_refusal(spec)
        raise TypeError(
            f"augment={spec.__name__} is a class ({spec.__module__}.{spec.__qualname__}), "
            f"not an augmentation: instantiate it, e.g. augment={spec.__name__}(...) "
            "(the parentheses are missing)"
        )
    if _is_from(spec, "kornia"):
        if not adapters._KORNIA:
            raise adapters._missing(adapters._KORNIA, "a kornia augmentation")
        import kornia.augmentation as KA
        from kornia.augmentation.container.base import ImageSequentialBase

        if adapters._is_mix(spec):
            raise TypeError(f"augment={_short(spec)} is {adapters._mix_refusal(spec)}")
        if isinstance(spec, KA.AugmentationSequential):
            return KorniaAugment(spec)
        # single augmentations, ImageSequential and the auto-augment policies (RandAugment,
        # TrivialAugment, AutoAugment) take images only: wrap them so masks follow
        if isinstance(spec, (KA.base._AugmentationBase, ImageSequentialBase)):
            return KorniaAugment(KA.AugmentationSequential(spec, data_keys=["input", "mask"]))
        raise TypeError(
            f"augment={_short(spec)} is a kornia object the stream cannot apply to images "
            "and masks together; pass a kornia.augmentation.AugmentationSequential("
            "..., data_keys=['input', 'mask']) or a single kornia augmentation"
        )
    if _is_from(spec, "albumentations"):
        if not adapters._ALBUMENTATIONS:
            raise adapters._missing(adapters._ALBUMENTATIONS, "an albumentations transform")
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
        import albumentations as A

        if isinstance(spec, A.BaseCompose):
            return AlbumentationsAugment(spec)
        if isinstance(spec, A.BasicTransform):
            return AlbumentationsAugment(A.Compose([spec]))
    if _is_from(spec, "torchvision"):
        raise _torchvision_refusal(spec)
    if isinstance(spec, torch.nn.Module):
        # a Module's own signature is (*args, **kwargs): look at what forward takes
        if not _accepts_three_args(spec.forward):
            raise TypeError(
                f"augment={_short(spec)}: its forward{_signature(spec.forward)} cannot be "
                f"called as forward(images, masks, generator); accepted: {_ACCEPTED}"
            )
        return spec
    if callable(spec) and _accepts_three_args(spec):
        return spec
    if callable(spec):
        raise TypeError(
            f"augment callable {_short(spec)} cannot be called as fn(images, masks, generator); "
            f"accepted: {_ACCEPTED}"
        )
    raise TypeError(f"augment must be one of: {_ACCEPTED}; got {type(spec).__name__}")
