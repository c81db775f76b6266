"""Adapters for a user's kornia or albumentations pipeline (optional dependencies).

Both move image and mask together, mark pixels from outside the frame with
``ignore_index`` and draw one seed per batch from the caller's generator (see
:mod:`dgan_data.augment`).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any, Literal

import numpy as np
import torch
from lightning_utilities.core.imports import RequirementCache

from ..conventions import check_int
from .batch import _check_batch, _check_generator, _draw_seed

log = logging.getLogger(__name__)

_KORNIA = RequirementCache("kornia>=0.7")
_ALBUMENTATIONS = RequirementCache("albumentations>=2.0")
_INSTALL_HINT = 'pip install "dgan-data[augment]"'


def _missing(req: RequirementCache, what: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"{what} needs an optional dependency: {req}. Install with {_INSTALL_HINT}"
    )


# OpenCV's nearest-neighbour flags (cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT): every
# other interpolation blends label ids into ids that are not there (between 0 and 4: 1,
# 2, 3), silently wrong labels on every boundary
_CV2_NEAREST = {0: "INTER_NEAREST", 6: "INTER_NEAREST_EXACT"}


def _walk_transforms(transform: Any, path: str) -> Any:
    """Every transform of an albumentations pipeline with its place (nested composes,
    OneOf, SomeOf, ...)."""
    yield transform, path
    for i, child in enumerate(getattr(transform, "transforms", None) or []):
        yield from _walk_transforms(child, f"{path}[{i}]")


def check_albumentations_masks(compose: Any, what: str = "the albumentations Compose") -> None:
    """Refuse a pipeline that resamples masks by interpolation (a transform built with
    ``mask_interpolation`` other than ``cv2.INTER_NEAREST``/``INTER_NEAREST_EXACT``): it
    would invent label ids along every boundary. ValueError naming the transform."""
    for transform, path in _walk_transforms(compose, "compose"):
        flag = getattr(transform, "mask_interpolation", None)
        if flag is not None and _as_flag(flag) not in _CV2_NEAREST:
            raise ValueError(
                f"{what}: {path} ({type(transform).__name__}) resamples masks with "
                f"mask_interpolation={flag!r}; labels must be resampled with "
                "cv2.INTER_NEAREST (albumentations' default), or interpolation blends "
                "class ids into ids that are not there"
            )


def _as_flag(value: Any) -> int | None:
    """An OpenCV interpolation flag as an int (None when it is not one)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_mix(module: Any) -> bool:
    """Whether ``module`` is a kornia mix augmentation (MixUp, CutMix, Mosaic)."""
    from kornia.augmentation import MixAugmentationBaseV2

    return isinstance(module, MixAugmentationBaseV2)


def _mix_refusal(module: Any) -> str:
    """Why a mix augmentation is refused (one message for both places)."""
    return (
        f"{type(module).__name__}, a mix augmentation: it blends or pastes two samples' "
        "images, which class-id masks cannot follow (kornia raises NotImplementedError "
        "for masks); leave it out"
    )


def _check_kornia_masks(aug: Any) -> None:
    """Refuse an ``AugmentationSequential`` whose ``extra_args`` resample the mask with
    anything but nearest neighbour (it would blend class ids into others), or that holds
    an augmentation kornia cannot apply to masks (``RandomThinPlateSpline``,
    ``RandomFisheye``: a NotImplementedError from inside kornia at the first batch), a mix
    augmentation, or ``Normalize``/``Denormalize`` (images leave [0, 1])."""
    from kornia.augmentation import Denormalize, Normalize
    from kornia.augmentation.base import _AugmentationBase
    from kornia.constants import DataKey, Resample

    no_masks = _AugmentationBase.apply_transform_mask
    for module in aug.modules():
        if _is_mix(module):
            raise ValueError(f"the kornia AugmentationSequential holds {_mix_refusal(module)}")
        if isinstance(module, (Normalize, Denormalize)):
            raise ValueError(
                f"the kornia AugmentationSequential holds {type(module).__name__}: augment "
                "returns images in [0, 1] and the stream normalises them itself (its "
                "normalize=), so they would be normalised twice; leave it out"
            )
        if isinstance(module, _AugmentationBase) and type(module).apply_transform_mask is no_masks:
            raise ValueError(
                f"the kornia AugmentationSequential holds {type(module).__name__}, which "
                "kornia cannot apply to masks (it raises NotImplementedError): leave it out, "
                "or apply it to the images only in a callable augment"
            )

    for key, args in (getattr(aug, "extra_args", None) or {}).items():
        try:
            is_mask = DataKey.get(key) is DataKey.MASK
        except (KeyError, TypeError, ValueError):
            continue
        if not is_mask or not isinstance(args, dict) or "resample" not in args:
            continue
        try:
            nearest = Resample.get(args["resample"]) is Resample.NEAREST
        except (KeyError, TypeError, ValueError):
            nearest = False
        if not nearest:
            raise ValueError(
                "the kornia AugmentationSequential resamples masks with "
                f"resample={args['resample']!r} (extra_args); labels must be resampled "
                "with Resample.NEAREST (kornia's default), or interpolation blends class "
                "ids into ids that are not there"
            )


def _kornia_container_settings(aug: Any) -> dict[str, dict[str, str]]:
    """The settings of every container in a kornia pipeline (the AugmentationSequential
    and nested ImageSequentials) that differ from kornia's defaults, by module name:
    its repr leaves them out, so ``random_apply=1`` looked like the full pipeline."""
    from kornia.augmentation import AugmentationSequential
    from kornia.augmentation.container import ImageSequential

    default_extra = AugmentationSequential(data_keys=["input", "mask"]).extra_args
    found: dict[str, dict[str, str]] = {}
    for name, module in aug.named_modules():
        if not isinstance(module, ImageSequential):
            continue
        weights = getattr(module, "random_apply_weights", None)
        uniform = weights is None or bool((weights == weights.flatten()[0]).all())
        settings = {
            "same_on_batch": getattr(module, "_same_on_batch", None),
            "keepdim": getattr(module, "_keepdim", None),
            "random_apply": getattr(module, "random_apply", False),
            "random_apply_weights": None if uniform else weights.tolist(),
            "extra_args": getattr(module, "extra_args", default_extra),
        }
        defaults = {"random_apply": False, "extra_args": default_extra}
        changed = {
            key: repr(value)
            for key, value in settings.items()
            if value != defaults.get(key)  # the rest default to None
        }
        if changed:
            found[name or "sequence"] = changed
    return found


class KorniaAugment:
    """Adapter: a ``kornia.augmentation.AugmentationSequential`` applied to image and mask.

    The mask goes through kornia's ``"mask"`` data key as float, stacked with two marker
    channels, all 1s and all 2s: kornia 0.9 resamples the ``"mask"`` key with nearest
    neighbour (and no antialias) unless the user overrides it, and pads it with 0 (its
    scalar ``fill`` if one is set). Afterwards a pixel is in-frame exactly when both
    markers still hold their value, which no constant fill can give (a fill of 1 passed
    a single ones marker); out-of-frame pixels become ``ignore_index`` and the label
    channel is rounded back to int64. (Reflection/border padding counts as in-frame, as
    for the image.) Intensity augmentations touch only the image. A sequence whose
    ``extra_args`` resample the mask with another mode than nearest is refused (ValueError):
    interpolated class ids are ids that are not there.

    The sequence is always called with ``data_keys=["input", "mask"]``, whatever it was
    built with. Images are computed in float32 and returned in their input dtype.

    Seeding: kornia draws from torch's global RNG. Each call draws one seed from the passed
    generator and runs kornia inside ``torch.random.fork_rng`` seeded with it (CPU, and the
    batch's CUDA device if any), so the same generator state gives the same output and the
    caller's global RNG is left untouched. kornia samples its parameters on the CPU unless
    the module was moved with ``.to(device)``.
    """

    def __init__(self, aug_sequential: Any, ignore_index: int = 255) -> None:
        if not _KORNIA:
            raise _missing(_KORNIA, "KorniaAugment")
        import kornia.augmentation as KA

        if not isinstance(aug_sequential, KA.AugmentationSequential):
            raise TypeError(
                "KorniaAugment expects a kornia.augmentation.AugmentationSequential, got "
                f"{type(aug_sequential).__name__}; wrap single augmentations with "
                'AugmentationSequential(..., data_keys=["input", "mask"])'
            )
        _check_kornia_masks(aug_sequential)
        self.aug = aug_sequential
        self.ignore_index = check_int(ignore_index, "ignore_index")

    def __repr__(self) -> str:
        # the pipeline's repr lists its augmentations and their settings, but not its
        # containers' own (random_apply, same_on_batch, ...): stream states record this
        # repr, so a state resumes only under the same pipeline
        extra = f", ignore_index={self.ignore_index}" if self.ignore_index != 255 else ""
        containers = _kornia_container_settings(self.aug)
        if containers:
            extra += f", containers={containers}"
        return f"{type(self).__name__}({self.aug!r}{extra})"

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch with kornia, seeded from ``generator``."""
        _check_batch(images, masks)
        seed = _draw_seed(generator)
        dev = images.device
        ones = torch.ones_like(masks, dtype=torch.float32)
        m = torch.stack([masks.float(), ones, 2 * ones], 1)
        cuda = (
            [dev.index if dev.index is not None else torch.cuda.current_device()]
            if dev.type == "cuda"
            else []
        )
        with torch.random.fork_rng(devices=cuda):
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(cuda[0]):
                    torch.cuda.manual_seed(seed)
            out = self.aug(images.float(), m, data_keys=["input", "mask"])
        if not isinstance(out, (list, tuple)) or len(out) != 2:
            raise TypeError(
                "the kornia AugmentationSequential did not return (image, mask); build it "
                'with data_keys=["input", "mask"] and no extra outputs'
            )
        x, m = out
        if m.ndim != 4 or m.shape[1] != 3:
            raise ValueError(
                f"kornia returned a mask of shape {tuple(m.shape)}, expected (B, 3, H, W)"
            )
        valid = ((m[:, 1] - 1).abs() < 1e-3) & ((m[:, 2] - 2).abs() < 1e-3)
        labels = m[:, 0].round().long()
        labels = torch.where(valid, labels, torch.full_like(labels, self.ignore_index))
        return x.to(images.dtype), labels


class AlbumentationsAugment:
    """Adapter: an ``albumentations.Compose`` applied per sample on the CPU.

    Cost: albumentations works on one numpy HWC image at a time, so every batch is copied to
    the CPU (one transfer), augmented sample by sample in Python/OpenCV, and copied back to
    its device. That serialises the stream on CPU work: fine for small images and batches,
    often the bottleneck at 256 px and up (see ``benchmarks/bench_augment.py``). Prefer
    :class:`BatchAugment` or :class:`KorniaAugment` for on-GPU streams.

    Images are handed over as float32 HWC in [0, 1] (``image_dtype="float32"``, no
    quantisation) or uint8 (``image_dtype="uint8"``, rounded, faster for some OpenCV ops and
    required by a few transforms); they come back in the input dtype. The Compose must
    keep them in [0, 1]: a result outside (``A.Normalize``, ``A.FromFloat``) is a
    ValueError, not clamped (normalise with the stream's ``normalize=``). The labels are
    handed over as the uint8 HW ``mask`` (so transforms that read it, such as
    ``CropNonEmptyMaskIfExists``, see labels only) and two markers, all 1s and all 2s, as
    ``masks=[...]``: albumentations resamples masks with nearest neighbour by default and
    pads them with ``fill_mask`` (0 unless set), so a pixel is in-frame exactly when both
    markers still hold their value, whatever ``fill_mask`` is (a fill of 1 passed a single
    ones marker); the others become ``ignore_index`` (as do regions a transform fills in every mask,
    such as ``MaskDropout``'s). Labels must be in [0, 255]. A transform built with another
    ``mask_interpolation`` than nearest is refused at construction (ValueError naming it).

    Seeding: albumentations 2.x keeps its own ``numpy.random.Generator`` and
    ``random.Random`` in the Compose (``Compose(seed=...)`` / ``set_random_seed`` /
    ``set_random_state``) and ignores global seeds. Each call draws one seed from the passed
    generator and installs fresh ``np.random.default_rng(seed)`` / ``random.Random(seed)``
    with ``compose.set_random_state`` (shared by all its transforms), then runs the B samples
    in order: same generator state, same output. This replaces the Compose's own state.
    """

    def __init__(
        self,
        compose: Any,
        ignore_index: int = 255,
        image_dtype: Literal["float32", "uint8"] = "float32",
    ) -> None:
        if not _ALBUMENTATIONS:
            raise _missing(_ALBUMENTATIONS, "AlbumentationsAugment")
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
        import albumentations as A

        if not isinstance(compose, A.BaseCompose):
            raise TypeError(
                "AlbumentationsAugment expects an albumentations Compose (BaseCompose), got "
                f"{type(compose).__name__}; wrap transforms with albumentations.Compose([...])"
            )
        if image_dtype not in ("float32", "uint8"):
            raise ValueError(f"image_dtype must be 'float32' or 'uint8', got {image_dtype!r}")
        check_albumentations_masks(compose)
        self.compose = compose
        self.ignore_index = check_int(ignore_index, "ignore_index")
        self.image_dtype = image_dtype
        self._warned_device = False

    def __repr__(self) -> str:
        # the Compose's repr lists its transforms and their settings (stream states
        # record it, so a state resumes only under the same pipeline)
        extra = f", ignore_index={self.ignore_index}" if self.ignore_index != 255 else ""
        return f"{type(self).__name__}({self.compose!r}, image_dtype={self.image_dtype!r}{extra})"

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch sample by sample on the CPU, seeded from ``generator``."""
        _check_batch(images, masks)
        _check_generator(generator)  # here too: an empty batch draws no seed
        B = images.shape[0]
        if B == 0:
            return images, masks.long()
        lo, hi = int(masks.min()), int(masks.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                "AlbumentationsAugment passes masks as uint8: labels must be in [0, 255], "
                f"got [{lo}, {hi}]"
            )
        if images.device.type != "cpu" and not self._warned_device:
            log.info(
                "albumentations augments on the CPU, one sample at a time: every %s batch is "
                "copied to the host and back (BatchAugment or KorniaAugment stay on the device)",
                images.device.type,
            )
            self._warned_device = True
        seed_compose(self.compose, _draw_seed(generator))

        x = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1)
        if self.image_dtype == "uint8":
            x = (x * 255).round().to(torch.uint8)
        x_np = x.cpu().numpy()
        m_np = masks.to(torch.uint8).cpu().numpy()
        markers = frame_markers(m_np.shape[1:])

        out_imgs, out_masks = [], []
        for i in range(B):
            img, labels = albumentations_sample(
                self.compose, x_np[i], m_np[i], self.ignore_index, markers
            )
            if out_imgs and img.shape != out_imgs[0].shape:
                raise ValueError(
                    f"the albumentations Compose returned images of different sizes "
                    f"({out_imgs[0].shape} and {img.shape}); end it with a fixed-size op "
                    "(e.g. A.Resize, A.RandomCrop, A.PadIfNeeded) so the batch can be stacked"
                )
            out_imgs.append(img)
            out_masks.append(labels)

        img_t = unit_range_images(np.stack(out_imgs), self.compose)
        labels = torch.from_numpy(np.stack(out_masks))
        dev = images.device
        img_t = img_t.permute(0, 3, 1, 2).to(device=dev, dtype=images.dtype, non_blocking=True)
        return img_t.contiguous(), labels.to(dev, non_blocking=True)


def frame_markers(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Two uint8 masks, all 1s and all 2s: no constant fill equals both, so a pixel that
    still holds 1 and 2 came from inside the frame."""
    return [np.full(shape, value, dtype=np.uint8) for value in (1, 2)]


def seed_compose(compose: Any, seed: int) -> None:
    """Give an albumentations Compose fresh random state from ``seed``: it keeps its own
    generators and ignores global seeds, so every copy of it (one per DataLoader worker)
    would otherwise draw the same transforms."""
    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))


def albumentations_sample(
    compose: Any,
    image: np.ndarray,
    mask: np.ndarray,
    ignore_index: int,
    markers: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One sample through an albumentations Compose: (HxWx3 image, HxW int64 labels with
    ``ignore_index`` where the pixel came from outside the frame).

    The label alone is the ``mask`` (transforms that read it, such as
    ``CropNonEmptyMaskIfExists``, see only labels); two markers (:func:`frame_markers`)
    ride along as separate masks, warped with the same nearest lookup, so padding is
    told from labels whatever ``fill_mask`` is. Anything but an HxWx3 image and HxW masks
    (``ToTensorV2``, channel changes) is a ValueError.
    """
    if markers is None:
        markers = frame_markers(mask.shape)
    res = compose(image=image, mask=mask, masks=markers)
    img, msk = res["image"], res["mask"]
    hw = getattr(img, "shape", (None,))[:2]
    out_markers = list(res["masks"])
    valid = None
    if len(out_markers) == 2 and all(getattr(m, "shape", None) == hw for m in out_markers):
        valid = (np.asarray(out_markers[0]) == 1) & (np.asarray(out_markers[1]) == 2)
    if (
        getattr(img, "ndim", None) != 3
        or img.shape[-1] != 3
        or getattr(msk, "shape", None) != hw
        or valid is None
    ):
        raise ValueError(
            f"the albumentations Compose returned image {getattr(img, 'shape', None)} and "
            f"mask {getattr(msk, 'shape', type(msk).__name__)}; expected HxWx3 and HxW (no "
            "ToTensorV2, no channel changes)"
        )
    return img, np.where(valid, msk, ignore_index).astype(np.int64)


# rounding noise of float transforms; anything further out is a pipeline that leaves [0, 1]
UNIT_RANGE_TOLERANCE = 1e-3


def unit_range_images(stacked: np.ndarray, compose: Any) -> torch.Tensor:
    """The Compose's images as float in [0, 1]: uint8 is scaled; a float result out of
    [0, 1] (A.Normalize, A.FromFloat) is a ValueError, not a silent clamp to black."""
    images = torch.from_numpy(stacked)
    if images.dtype == torch.uint8:
        return images.float() / 255
    images = images.float()
    lo, hi = float(images.min()), float(images.max())
    if not (lo >= -UNIT_RANGE_TOLERANCE and hi <= 1 + UNIT_RANGE_TOLERANCE):
        raise ValueError(
            f"the albumentations Compose returned images in [{lo:.3g}, {hi:.3g}], not in "
            f"[0, 1]: leave out A.Normalize / A.FromFloat (normalise with the stream's "
            f"normalize= instead); Compose: {type(compose).__name__} of "
            f"{[type(t).__name__ for t in getattr(compose, 'transforms', [])]}"
        )
    return images.clamp_(0, 1)
