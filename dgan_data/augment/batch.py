"""The built-in batch augmentation, :class:`BatchAugment`, and the pieces every
augmentation shares: the calling convention ``fn(images, masks, generator)``, input
checks, seeding and ``normalize``. See :mod:`dgan_data.augment` for the conventions.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..conventions import IGNORE_INDEX, check_int, check_number, keyword_hints, short_list

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ITU-R 601 luma, as torchvision's rgb_to_grayscale uses; with the YIQ chroma axes.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


class AugmentFn(Protocol):
    """What the stream calls: ``fn(images, masks, generator) -> (images, masks)``."""

    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


# --------------------------------------------------------------------------- helpers


def _check_batch(images: torch.Tensor, masks: torch.Tensor) -> None:
    """Fail early, with the shapes in the message, instead of deep inside torch."""
    if not isinstance(images, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise TypeError(
            f"augment expects torch tensors, got images={type(images).__name__}, "
            f"masks={type(masks).__name__}"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor in [0, 1], got dtype {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W) class ids, got shape {tuple(masks.shape)}")
    if masks.is_floating_point() or masks.is_complex() or masks.dtype == torch.bool:
        raise ValueError(f"masks must be an integer tensor (int64), got dtype {masks.dtype}")
    if masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"images {tuple(images.shape)} and masks {tuple(masks.shape)} disagree: "
            "masks must be (B, H, W) with the images' B, H and W"
        )
    if masks.device != images.device:
        raise ValueError(f"images are on {images.device} but masks on {masks.device}")


#: Largest mask id BatchAugment's geometric ops carry exactly: the mask is warped as float32
#: ``mask + 1``, and float32 holds every integer up to 2**24.
MAX_MASK_ID = 2**24 - 1


def _check_input_mask_ids(masks: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> None:
    """Refuse mask ids below 0 or above :data:`MAX_MASK_ID`, naming them (one min/max
    reduction). The geometric warp reads ``mask + 1 == 0`` as "outside the frame", so -1
    silently became ``ignore_index``, but only with a geometric op on."""
    if masks.numel() == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(masks))
    if lo >= 0 and hi <= MAX_MASK_ID:
        return
    ids = masks.long()
    shown = _listed_ids(ids, (ids < 0) | (ids > MAX_MASK_ID))
    if lo < 0:
        why = (
            f"neither a class (ids >= 0) nor the ignore index {ignore_index}; mark "
            f"unlabelled pixels with {ignore_index}, not a negative id"
        )
    else:
        why = (
            f"above {MAX_MASK_ID}: masks are warped as float32, which holds ids up to "
            "2**24 - 1 exactly"
        )
    raise ValueError(f"BatchAugment: masks hold ids {shown}, which are {why}")


def _listed_ids(ids: torch.Tensor, wrong: torch.Tensor) -> str:
    """The distinct ids where ``wrong`` holds, for an error message (the first five)."""
    return short_list(torch.unique(ids[wrong]).tolist(), limit=5)


def _check_generator(generator: Any) -> None:
    """``generator`` must be a ``torch.Generator`` or None (an int seed is not one):
    a TypeError saying how to make one, instead of an AttributeError from inside torch."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    seed = "seed"
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        seed = str(int(generator))
    state = (
        ", or from a saved state with g = torch.Generator(); g.set_state(state)"
        if isinstance(generator, torch.Tensor)
        else ""
    )
    raise TypeError(
        f"augment: generator must be a torch.Generator or None, got "
        f"{type(generator).__name__}; make one from a seed with "
        f"torch.Generator().manual_seed({seed}){state}"
    )


def _draw_seed(generator: torch.Generator | None) -> int:
    """One 63-bit seed from ``generator`` (or torch's global RNG when None)."""
    _check_generator(generator)
    if generator is None:
        return int(torch.randint(0, 2**63 - 1, (1,)).item())
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device))


def _as_number_list(seq: Any, what: str) -> list[float]:
    """A 1-D sequence of finite real numbers (numpy arrays and tensors via ``tolist``)."""
    if hasattr(seq, "tolist") and not isinstance(seq, (str, bytes)):
        seq = seq.tolist()  # numpy arrays and tensors
    if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence) or not seq:
        raise ValueError(f"normalize: {what} must be a sequence of numbers, got {seq!r}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in seq):
        raise ValueError(f"normalize: {what} must hold numbers, got {seq!r}")
    if not all(math.isfinite(v) for v in seq):
        raise ValueError(f"normalize: {what} must be finite, got {tuple(seq)}")
    return [float(v) for v in seq]


def check_normalize(value: Any, channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)``: two sequences (lists, tuples, numpy arrays or tensors) of
    ``channels`` finite numbers each, every std > 0; else ValueError. Checked when a
    stream is built, not at its first batch (``normalize`` does not broadcast)."""
    if hasattr(value, "tolist") and not isinstance(value, (tuple, list)):
        value = value.tolist()  # a (2, C) array or tensor
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"normalize must be (mean, std), got {value!r}")
    mean, std = (tuple(_as_number_list(seq, name)) for name, seq in zip(("mean", "std"), value))
    if len(mean) != len(std):
        raise ValueError(f"normalize: {len(mean)} means but {len(std)} stds")
    if len(mean) != channels:
        raise ValueError(
            f"normalize: images have {channels} channels, so mean and std need "
            f"{channels} values each, got {len(mean)}"
        )
    if any(v <= 0 for v in std):
        raise ValueError(f"normalize: every std must be > 0, got {std}")
    return mean, std


def check_augment_output(
    out: Any, size: int, num_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, masks)`` returned by a user's augment callable, checked: a 2-tuple of
    ``(size, 3, H, W)`` float images and ``(size, H, W)`` integer masks on one device,
    with ids in ``0..num_classes-1`` or the ignore index (when ``num_classes`` is given).
    Anything else would become garbage samples or fail deep inside the stream (or the
    training loss, on CUDA as a device-side assert); raises ValueError starting
    "augment callable returned"."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        if isinstance(out, torch.Tensor):
            got = f"one tensor of shape {tuple(out.shape)}"
        elif isinstance(out, (tuple, list)):
            got = f"a {type(out).__name__} of {len(out)} items"
        else:
            got = "None" if out is None else f"a {type(out).__name__}"
        raise ValueError(f"augment callable returned {got}; it must return a tuple (images, masks)")
    images, masks = out
    try:
        _check_batch(images, masks)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"augment callable returned a wrong (images, masks) pair: {e}. It must return "
            "(B, 3, H, W) float images and (B, H, W) integer masks, in that order"
        ) from None
    if images.shape[0] != size:
        raise ValueError(
            f"augment callable returned {images.shape[0]} samples for a batch of {size}; "
            "it must keep every sample, in order"
        )
    if num_classes is not None:
        _check_mask_ids(masks, num_classes)
    return images, masks.long()  # uint8 or int32 masks would fail cross_entropy later


def _check_mask_ids(masks: torch.Tensor, num_classes: int) -> None:
    """Refuse ids that are neither a class nor the ignore index (a fill of -1 or 0)."""
    ids = masks.long()
    wrong = (ids < 0) | ((ids >= num_classes) & (ids != IGNORE_INDEX))
    if bool(wrong.any()):
        raise ValueError(
            f"augment callable returned mask ids {_listed_ids(ids, wrong)}, which are neither "
            f"a class (0..{num_classes - 1}) nor the ignore index {IGNORE_INDEX}; fill pixels it "
            f"moves in from outside the image with {IGNORE_INDEX}"
        )


def normalize(
    images: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """``(images - mean) / std`` per channel, on the images' device and dtype.

    Default statistics are ImageNet's, what most pretrained segmentation backbones expect.
    """
    if images.ndim < 3 or images.shape[-3] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"normalize: images of shape {tuple(images.shape)} need one mean and std per "
            f"channel (dim -3), got {len(mean)} means and {len(std)} stds"
        )
    if any(s == 0 for s in std):
        raise ValueError(f"normalize: std must be non-zero, got {tuple(std)}")
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images - m) / s


@dataclass
class AugmentParams:
    """Per-sample parameters of :class:`BatchAugment`, each a CPU tensor of length B.

    Disabled operations hold their identity value (no flip, scale 1, angle 0, ...), so the
    same object can be inspected, stored, or applied again to get the same output.
    """

    flip: torch.Tensor  # (B,) bool, horizontal flip
    scale: torch.Tensor  # (B,) zoom factor, > 1 zooms in
    angle: torch.Tensor  # (B,) rotation in degrees, counter-clockwise on screen
    translate: torch.Tensor  # (B, 2) shift (x, y) as a fraction of (W, H)
    brightness: torch.Tensor  # (B,) multiplicative factor
    contrast: torch.Tensor  # (B,) factor around the image's mean grey
    saturation: torch.Tensor  # (B,) factor around the pixel's grey (luma)
    hue: torch.Tensor  # (B,) hue rotation as a fraction of a full turn

    def __len__(self) -> int:
        return int(self.flip.shape[0])

    def to(self, device: torch.device | str) -> AugmentParams:
        """A copy with every tensor on ``device``."""
        return AugmentParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def select(self, index: int | slice | torch.Tensor) -> AugmentParams:
        """The parameters of some samples (e.g. ``params.select(slice(0, 2))``)."""
        if isinstance(index, int):
            size = len(self)
            if not -size <= index < size:
                raise IndexError(f"sample {index} of parameters for {size} samples")
            index %= size  # slice(-1, 0) would select nothing
            index = slice(index, index + 1)
        return AugmentParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _magnitude(
    value: Any, name: str, high: float | None, what: str, off: str = "; None or 0 disables it"
) -> float:
    """A BatchAugment setting as a finite float in [0, ``high``] (None: 0, off); a bool,
    a string, NaN or inf is a ValueError naming ``name``."""
    if value is None:
        return 0.0
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number ({what}) or None, got {value!r}")
    try:
        return check_number(value, name, low=0.0, high=high)
    except ValueError as e:
        raise ValueError(f"{e} ({name} is {what}{off})") from None


#: Largest zoom factor (and 1/MAX_ZOOM the smallest): (1e-300, 1e300) made the affine
#: grid inf and the images NaN, silently.
MAX_ZOOM = 100.0


def _check_scale(scale: Any) -> tuple[float, float] | None:
    """``scale`` as a (low, high) pair of floats with 1/MAX_ZOOM <= low <= high <=
    MAX_ZOOM (None: off)."""
    if scale is None:
        return None
    if hasattr(scale, "tolist") and not isinstance(scale, (str, bytes)):
        scale = scale.tolist()  # numpy arrays and tensors
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise ValueError(
            f"scale must be a (low, high) pair of zoom factors, e.g. (0.8, 1.25), or None; "
            f"got {scale!r:.80}"
        )
    lo, hi = (
        _magnitude(v, f"scale {part}", None, "a zoom factor > 0", "; scale=None disables zoom")
        for v, part in zip(scale, ("low", "high"))
    )
    if not 0.0 < lo <= hi:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
    if lo < 1.0 / MAX_ZOOM or hi > MAX_ZOOM:
        raise ValueError(
            f"scale must lie in [1/{MAX_ZOOM:g}, {MAX_ZOOM:g}] (a zoom beyond makes the "
            f"sampling grid overflow), got {scale}"
        )
    return (lo, hi)


@keyword_hints
class BatchAugment:
    """Random flip, scale/translate, rotation and colour jitter per sample, on the batch's device.

    Geometry: one affine map per sample (horizontal flip, then zoom by ``scale``, rotation by
    ``angle``, translation by ``translate``), applied with ``F.affine_grid`` +
    ``F.grid_sample`` (``align_corners=False``) in float32: bilinear for the image, nearest
    for the mask. Mask pixels whose source lies outside the frame become ``ignore_index``;
    the test is exact because the mask is sampled as ``mask + 1`` with zero padding, so a
    0 after sampling means "outside" by the very same nearest lookup. Image pixels outside
    the frame are 0 (black) by default (``image_padding="zeros"``), or ``"reflection"`` /
    ``"border"``. They are unlabeled either way.

    Colour (image only, before the warp so zero padding stays zero): brightness (multiply),
    contrast (blend with the image's mean grey), then saturation and hue together as one
    3x3 colour matrix per sample (scale and rotate the chroma plane of YIQ; the saturation
    part equals torchvision's blend with the luma grey). Clamped to [0, 1] after each step.

    Ranges (``None`` or 0 disables an op; every value a finite number, not a bool or a
    string, else ValueError naming the setting):
        hflip: flip probability in [0, 1] (e.g. 0.5; ``True`` is refused, as it would
        flip every image). scale: (low, high) zoom, drawn log-uniformly.
        translate: max shift in [0, 1] as a fraction of width/height, uniform in [-t, t]
        per axis.
        rotate: max angle in degrees, uniform in [-r, r].
        brightness / contrast / saturation: factor uniform in [1 - x, 1 + x].
        hue: shift uniform in [-h, h] turns (h <= 0.5).

    Parameters are always drawn for every op in a fixed order, so disabling one op does not
    change the others' draws for a given seed.
    """

    def __init__(
        self,
        *,
        hflip: float | None = 0.5,
        scale: tuple[float, float] | None = (0.8, 1.25),
        translate: float | None = 0.1,
        rotate: float | None = 10.0,
        brightness: float | None = 0.2,
        contrast: float | None = 0.2,
        saturation: float | None = 0.2,
        hue: float | None = 0.02,
        image_padding: Literal["zeros", "reflection", "border"] = "zeros",
        image_interpolation: Literal["bilinear", "nearest", "bicubic"] = "bilinear",
        ignore_index: int = 255,
    ) -> None:
        if isinstance(hflip, (bool, np.bool_)):
            raise ValueError(
                f"hflip is a flip probability in [0, 1] (e.g. 0.5), not a switch: got "
                f"{hflip!r}; use hflip=1.0 to flip every image, None or 0 to never flip"
            )
        self.hflip = _magnitude(hflip, "hflip", 1.0, "a flip probability")
        self.scale: tuple[float, float] | None = _check_scale(scale)
        self.translate = _magnitude(translate, "translate", 1.0, "a fraction of width/height")
        self.rotate = _magnitude(rotate, "rotate", None, "an angle in degrees")
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            setattr(self, name, _magnitude(value, name, 1.0, "the factor range [1-x, 1+x]"))
        self.hue = _magnitude(hue, "hue", 0.5, "a hue shift in turns")
        if image_padding not in ("zeros", "reflection", "border"):
            raise ValueError(
                f"image_padding must be 'zeros', 'reflection' or 'border', got {image_padding!r}"
            )
        if image_interpolation not in ("bilinear", "nearest", "bicubic"):
            raise ValueError(
                "image_interpolation must be 'bilinear', 'nearest' or 'bicubic', "
                f"got {image_interpolation!r}"
            )
        self.image_padding = image_padding
        self.image_interpolation = image_interpolation
        self.ignore_index = check_int(ignore_index, "ignore_index", 0, 255)  # uint8 masks

    def __repr__(self) -> str:
        keys = (
            "hflip",
            "scale",
            "translate",
            "rotate",
            "brightness",
            "contrast",
            "saturation",
            "hue",
        )
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys)
        # settings at their defaults are left out, so the repr of the defaults (which
        # stream states record) stays what it was before these settings were listed
        if self.image_interpolation != "bilinear":
            args += f", image_interpolation={self.image_interpolation!r}"
        if self.ignore_index != 255:
            args += f", ignore_index={self.ignore_index!r}"
        return f"{type(self).__name__}({args}, image_padding={self.image_padding!r})"

    @property
    def geometric(self) -> bool:
        """Whether any geometric op is enabled (if not, the mask passes through untouched)."""
        return bool(self.hflip or self.scale is not None or self.translate or self.rotate)

    @property
    def photometric(self) -> bool:
        """Whether any colour op is enabled."""
        return bool(self.brightness or self.contrast or self.saturation or self.hue)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> AugmentParams:
        """Draw parameters for ``batch_size`` samples from ``generator`` (CPU tensors).

        Uses a fixed number of draws in a fixed order, so a given generator state always
        gives the same parameters; a CPU generator gives them on any device.
        """
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        _check_generator(generator)
        dev = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand((9, batch_size), generator=generator, device=dev, dtype=torch.float64).cpu()
        B = batch_size

        flip = u[0] < self.hflip
        if self.scale is not None:
            lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
            scale = torch.exp(lo + (hi - lo) * u[1])
        else:
            scale = torch.ones(B, dtype=torch.float64)
        translate = (2 * u[2:4].T - 1) * self.translate
        angle = (2 * u[4] - 1) * self.rotate

        def factor(x: float, v: torch.Tensor) -> torch.Tensor:
            return 1 + (2 * v - 1) * x

        return AugmentParams(
            flip=flip,
            scale=scale.float(),
            angle=angle.float(),
            translate=translate.float().contiguous(),
            brightness=factor(self.brightness, u[5]).float(),
            contrast=factor(self.contrast, u[6]).float(),
            saturation=factor(self.saturation, u[7]).float(),
            hue=((2 * u[8] - 1) * self.hue).float(),
        )

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch with freshly drawn parameters; see :meth:`apply`."""
        self._check_inputs(images, masks)
        return self._apply(images, masks, self.sample_params(images.shape[0], generator))

    def _check_inputs(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        """Shapes, dtypes and devices (``_check_batch``), and mask ids >= 0 whatever ops
        are enabled."""
        _check_batch(images, masks)
        _check_input_mask_ids(masks, self.ignore_index)

    # -- the transforms

    @staticmethod
    def affine_matrices(params: AugmentParams, height: int, width: int) -> torch.Tensor:
        """``(B, 2, 3)`` float32 ``theta`` for ``F.affine_grid``: output -> input coordinates.

        Forward map in pixel units around the centre: ``v = R(angle) * scale * Flip(u) + t``.
        ``affine_grid`` wants the inverse in normalised coordinates, so with
        ``D = diag(W/2, H/2)``: ``theta = D^-1 Flip (1/scale) R(-angle) [D | -t]``. Working in
        pixel units keeps rotations rigid on non-square images.
        """
        B = len(params)
        a = torch.deg2rad(params.angle.double())
        cos, sin = torch.cos(a), torch.sin(a)
        # Screen coordinates have y pointing down, so R(+a) is a counter-clockwise turn on screen
        # when written with the sign flipped on sin.
        rinv = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        rinv = rinv / params.scale.double().view(B, 1, 1)
        flip = torch.where(params.flip, -1.0, 1.0).double()
        rinv = rinv * torch.stack([flip, torch.ones_like(flip)], -1).view(B, 2, 1)
        d = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
        lin = rinv * d.view(1, 1, 2) / d.view(1, 2, 1)  # D^-1 M D
        t_pix = params.translate.double() * torch.tensor([width, height], dtype=torch.float64)
        offset = -(rinv @ t_pix.unsqueeze(-1)).squeeze(-1) / d
        return torch.cat([lin, offset.unsqueeze(-1)], -1).float()

    def _jitter(self, x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """Colour jitter on a float32 batch; ``p`` on the CPU (factors are moved as needed)."""
        B, dev = x.shape[0], x.device
        if self.brightness:
            x = (x * p.brightness.to(dev).view(B, 1, 1, 1)).clamp_(0, 1)
        if self.contrast:
            grey = torch.einsum("c,bchw->bhw", _RGB_TO_YIQ[0].to(x), x)
            mean = grey.mean(dim=(1, 2)).view(B, 1, 1, 1)
            c = p.contrast.to(dev).view(B, 1, 1, 1)
            x = (c * x + (1 - c) * mean).clamp_(0, 1)
        if self.saturation or self.hue:
            turn = 2 * math.pi * p.hue.double()
            cos, sin = torch.cos(turn), torch.sin(turn)
            s = p.saturation.double()
            chroma = torch.zeros(B, 3, 3, dtype=torch.float64)
            chroma[:, 0, 0] = 1
            chroma[:, 1, 1], chroma[:, 1, 2] = s * cos, -s * sin
            chroma[:, 2, 1], chroma[:, 2, 2] = s * sin, s * cos
            mat = (_YIQ_TO_RGB @ chroma @ _RGB_TO_YIQ).to(device=x.device, dtype=x.dtype)
            x = torch.einsum("bij,bjhw->bihw", mat, x).clamp_(0, 1)
        return x

    def apply(
        self, images: torch.Tensor, masks: torch.Tensor, params: AugmentParams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply ``params`` (from :meth:`sample_params`) to a batch; deterministic.

        Returns images in the input dtype and int64 masks, both on the input device.
        Computation runs in float32 whatever the image dtype (float16/bfloat16 included).
        Mask ids must be >= 0 (and at most :data:`MAX_MASK_ID`), else ValueError naming them.
        """
        self._check_inputs(images, masks)
        return self._apply(images, masks, params)

    def _apply(
        self, images: torch.Tensor, masks: torch.Tensor, params: AugmentParams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`apply` on checked inputs."""
        B, _, H, W = images.shape
        if len(params) != B:
            raise ValueError(f"params are for {len(params)} samples but the batch has {B}")
        out_dtype = images.dtype
        masks = masks.long()
        if B == 0 or not (self.geometric or self.photometric):
            return images, masks

        dev = images.device
        params = params.to("cpu")
        x = images.float()
        if self.photometric:
            x = self._jitter(x, params)
        if self.geometric:
            grid = self._sampling_grid(params, B, H, W, dev)
            x = F.grid_sample(
                x,
                grid,
                mode=self.image_interpolation,
                padding_mode=self.image_padding,
                align_corners=False,
            )
            if self.image_interpolation == "bicubic":
                x = x.clamp_(0, 1)
            # mask + 1 with zero padding: 0 afterwards means "outside the source frame".
            # Float32 holds every label (<= 2**24) exactly and nearest never blends.
            m = F.grid_sample(
                (masks + 1).float().unsqueeze(1),
                grid,
                mode="nearest",
                padding_mode="zeros",
                align_corners=False,
            ).squeeze(1)
            m = m.round_().long()
            masks = torch.where(m == 0, torch.full_like(m, self.ignore_index), m - 1)
        return x.to(out_dtype), masks

    def _sampling_grid(
        self, params: AugmentParams, B: int, H: int, W: int, device: torch.device
    ) -> torch.Tensor:
        """The ``F.grid_sample`` grid of ``params``'s affine maps (output -> input)."""
        theta = self.affine_matrices(params.to("cpu"), H, W).to(device)
        return F.affine_grid(theta, [B, 1, H, W], align_corners=False)

    def with_probabilities(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        probs: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`__call__` that also moves soft labels ``probs`` (B, K, H, W) with the
        masks (:meth:`warp_probabilities`): the same draws, so images and masks are
        those :meth:`__call__` gives for the same generator state."""
        self._check_inputs(images, masks)
        params = self.sample_params(images.shape[0], generator)
        images, masks = self._apply(images, masks, params)
        return images, masks, self.warp_probabilities(probs, params)

    def warp_probabilities(self, probs: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Move per-pixel class probabilities (B, K, H, W) as :meth:`apply` moves the
        masks drawn with the same ``params`` (soft labels follow their image).

        Bilinear, so a pixel between two classes gets a blend; each pixel is renormalised
        to sum to 1. Pixels whose source lies outside the frame are 0 (:meth:`apply`
        marks them ``ignore_index`` in the mask). Colour ops do not touch them. Returns
        the input dtype.
        """
        if probs.ndim != 4:
            raise ValueError(f"probs must be (B, K, H, W), got shape {tuple(probs.shape)}")
        B, _, H, W = probs.shape
        if len(params) != B:
            raise ValueError(f"params are for {len(params)} samples but the batch has {B}")
        if B == 0 or not self.geometric:
            return probs
        grid = self._sampling_grid(params, B, H, W, probs.device)
        p = F.grid_sample(
            probs.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        total = p.sum(1, keepdim=True)
        p = torch.where(total > 0, p / total.clamp_min(1e-12), p)
        # the mask's in-frame test (nearest lookup, as in apply): near the edge the
        # bilinear footprint can reach into the frame where the nearest source is out
        in_frame = F.grid_sample(
            torch.ones(B, 1, H, W, device=probs.device),
            grid,
            mode="nearest",
            padding_mode="zeros",
            align_corners=False,
        )
        return (p * (in_frame > 0.5)).to(probs.dtype)
