"""Procedural cartoon faces with pixel-exact part masks: the toy world of dgan_data.

No pretrained GAN or labeled data set can be downloaded here, so the project renders
its own domain: cartoon faces with a part hierarchy like DatasetGAN's face-34
(skin, hair, ears, eyebrows, eye white > iris > pupil, nose > nostril, mouth > teeth,
neck, cloth). The nesting has exceptions (:data:`CLASS_PARENTS` lists them): nostrils
are drawn at the nose's lower rim and are not clipped to it, so part of a nostril (about
17 % of nostril pixels, in about two images of three) lies on the skin just below the
nose, and eyebrows can lie on the hair fringe; the masks still match the image there.
A GAN trained on these images stands in for a pretrained generator, and the renderer's
exact masks let every stage be scored against ground truth.

How a face is drawn: every sample gets its own parameter vector from a per-seed
``torch.Generator`` (on the CPU, so a seed renders identically alone, in any batch and
on any device). Each part is an analytic implicit shape ``f(x, y) < 0`` (ellipses,
super-ellipses, half planes, their intersections) in rotated, scaled "face
coordinates". The whole batch is drawn at once on coordinate grids, one part after
the other in painter's order:

- the **mask** takes the part's class wherever the pixel centre lies inside the shape
  (``f < 0``), so labels are exact by construction;
- the **image** blends the part's colour with an anti-aliased alpha
  ``sigmoid(-d * sharpness)``, ``d = f / |grad f|`` the approximate signed distance in
  pixels, so ``alpha > 0.5`` exactly where the mask says the part is.

Nuisances (pose, scale, rotation, head shape, overlapping colour ranges, textured and
gradient backgrounds, lighting, noise, blur) keep colour alone from segmenting it.
Their ranges form a :class:`Variation`; every shipped asset is built on the ``"base"``
world, and ``"wide"`` (:data:`VARIATIONS`) widens pose, scale, expression and lighting
and adds occluders, for measuring how hard a world is for a few labeled images.

Seeds are integers in ``[0, 2**32)``: the per-seed generator keeps only a seed's low 32
bits, so larger seeds are refused rather than repeat a smaller seed's face.

Seed splits (:data:`SPLITS`) are fixed forever: ``train`` (images for the GAN), ``pool``
(labeled real renders for baselines and the annotator), ``test`` (evaluation).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..conventions import as_index, check_int, check_number

logger = logging.getLogger(__name__)

__all__ = [
    "CLASS_NAMES",
    "CLASS_PARENTS",
    "MIN_SIZE",
    "NUM_CLASSES",
    "PALETTE",
    "SEED_LIMIT",
    "SMALL_PARTS",
    "SPLITS",
    "VARIATIONS",
    "Variation",
    "class_pixel_rates",
    "colorize_mask",
    "render_faces",
    "render_split",
    "resolve_variation",
    "split_seeds",
    "world_tag",
]

#: Class names, index = class id. 0 is the background.
CLASS_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "hair",
    "ear",
    "eyebrow",
    "eye_white",
    "iris",
    "pupil",
    "nose",
    "nostril",
    "mouth",
    "teeth",
    "neck",
    "cloth",
)
NUM_CLASSES: int = len(CLASS_NAMES)

#: Part hierarchy: each class's enclosing part (``None`` for top-level regions). Iris
#: and pupil stay inside the eye, teeth inside the mouth, nose and mouth on the skin;
#: the other parts do not always lie inside their parent. The ears are painted
#: behind the head, whose outline covers their inner half, so every visible ear pixel
#: lies beside the skin, not inside it (``skin`` is the part they attach to). The
#: nostrils sit at the nose's lower
#: rim and are not clipped to it, so about 17 % of nostril pixels lie on the skin just
#: below the nose (in about two images of three). Eyebrows and eye white are painted
#: over the hair fringe where it reaches them: 6.4 % of eyebrow pixels (in 27 % of
#: the images) and 0.03 % of eye-white pixels lie on hair, not skin (400 base test
#: renders; wide world 7.6 % and 0.10 %).
CLASS_PARENTS: dict[str, str | None] = {
    "background": None,
    "skin": None,
    "hair": None,
    "ear": "skin",
    "eyebrow": "skin",
    "eye_white": "skin",
    "iris": "eye_white",
    "pupil": "iris",
    "nose": "skin",
    "nostril": "nose",
    "mouth": "skin",
    "teeth": "mouth",
    "neck": None,
    "cloth": None,
}

#: The finest parts: those nested inside another part (iris, pupil, nostril, teeth) and
#: the eyebrow stroke; each covers under 0.6 % of the pixels on average (1,000 base test
#: renders: teeth 0.06 %, nostril 0.14 %, pupil 0.18 %, iris 0.36 %, eyebrow 0.57 %).
#: Not every part under 2 %: ear, eye white, nose and mouth are under 2 % too (nine
#: classes in the base world, ten with the neck in the wide one).
SMALL_PARTS: tuple[str, ...] = ("eyebrow", "iris", "pupil", "nostril", "teeth")

#: One distinct RGB colour per class (K x 3 uint8), for overlays and mask PNGs.
PALETTE: torch.Tensor = torch.tensor(
    [
        [0, 0, 0],  # background
        [255, 204, 153],  # skin
        [120, 60, 20],  # hair
        [255, 120, 0],  # ear
        [90, 90, 255],  # eyebrow
        [255, 255, 255],  # eye_white
        [0, 200, 200],  # iris
        [200, 0, 200],  # pupil
        [0, 170, 0],  # nose
        [255, 255, 0],  # nostril
        [220, 0, 0],  # mouth
        [160, 160, 160],  # teeth
        [0, 90, 160],  # neck
        [110, 200, 110],  # cloth
    ],
    dtype=torch.uint8,
)

#: Fixed seed ranges of the splits. Never change them: annotations refer to seeds.
SPLITS: dict[str, range] = {
    "train": range(0, 50_000),
    "pool": range(1_000_000, 1_010_000),
    "test": range(2_000_000, 2_001_000),
}

#: Seeds are refused from here on: ``torch.Generator.manual_seed`` keeps only a seed's
#: low 32 bits on the CPU, so seed ``s + 2**32`` would render the same face as ``s``.
SEED_LIMIT: int = 2**32
#: Smallest image size (pixels) the renderer draws.
MIN_SIZE: int = 16

_C = {name: i for i, name in enumerate(CLASS_NAMES)}
_NUM_PARAMS = 128  # uniforms per seed; only a prefix is used, the rest is headroom
_OCCLUDER_COLUMN = 112  # the occluder's uniforms start here, after the face's
_BLOB_RES = 8  # resolution of the low-frequency texture noise
_FAR = 1e3  # level-set value of an absent shape


@dataclass(frozen=True)
class Variation:
    """How far the nuisances range: pose (image half-widths, radians), expression (face
    units: head half-height 1) and lighting; the defaults are the built-in world's.

    A wider world makes few labeled images cover less of it, which is what a few-shot
    baseline has to cope with (see the README's *Where the chain loses*).
    """

    centre_x: float = 0.12  # head centre, +- image half-widths
    centre_y: tuple[float, float] = (-0.16, -0.02)
    scale: tuple[float, float] = (0.52, 0.66)  # head half-height in image half-widths
    rotation: float = 0.22  # +- radians
    yaw: float = 0.08  # +- sideways shift of eyes, nose and mouth
    eye_height: tuple[float, float] = (0.08, 0.12)
    mouth_width: tuple[float, float] = (0.2, 0.3)
    mouth_height: tuple[float, float] = (0.06, 0.12)
    smile: tuple[float, float] = (-0.6, 1.6)
    light: float = 0.3  # strength of the linear lighting gradient
    gain: tuple[float, float] = (0.85, 1.1)
    occluder_rate: float = 0.0  # share of images with a rod in front (labeled background)

    def __post_init__(self) -> None:
        """Refuse ranges that would draw NaN images or silently mean something else:
        every number finite (not a bool), every range a pair ``lo <= hi``, the ``+-``
        spreads (centre_x, rotation, yaw, light) >= 0, the lower bounds of the sizes
        (scale, eye_height, mouth_width, mouth_height) and of gain > 0, occluder_rate in
        [0, 1]. A ValueError names the field; list pairs are stored as tuples."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SPREADS or f.name == "occluder_rate":
                check_number(value, f"Variation.{f.name}")
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ValueError(f"Variation.{f.name} must be a pair (lo, hi), got {value!r:.80}")
            pair = tuple(value)
            if len(pair) != 2:
                raise ValueError(f"Variation.{f.name} must be a pair (lo, hi), got {value!r:.80}")
            for v in pair:
                check_number(v, f"Variation.{f.name}")
            if pair[0] > pair[1]:
                raise ValueError(f"Variation.{f.name} must have lo <= hi, got {pair!r}")
            if f.name in _POSITIVE_LOW and not pair[0] > 0:
                raise ValueError(f"Variation.{f.name} must have lo > 0, got {pair!r}")
            object.__setattr__(self, f.name, pair)
        for name in _SPREADS:
            if getattr(self, name) < 0:
                raise ValueError(
                    f"Variation.{name} is a +- range and must be >= 0, got {getattr(self, name)!r}"
                )
        if not 0 <= self.occluder_rate <= 1:
            raise ValueError(
                f"Variation.occluder_rate must be in [0, 1], got {self.occluder_rate!r}"
            )


#: Variation fields that are a symmetric ``+-`` spread (one number >= 0).
_SPREADS = ("centre_x", "rotation", "yaw", "light")
#: Variation ranges whose lower bound must be positive (sizes and the gain).
_POSITIVE_LOW = ("scale", "eye_height", "mouth_width", "mouth_height", "gain")


#: Named worlds: ``"base"`` (every shipped asset is built on it) and ``"wide"`` (larger
#: pose, scale, expression and lighting ranges, and occluders in 35 % of the images).
VARIATIONS: dict[str, Variation] = {
    "base": Variation(),
    "wide": Variation(
        centre_x=0.25,
        centre_y=(-0.28, 0.08),
        scale=(0.38, 0.74),
        rotation=0.5,
        yaw=0.15,
        eye_height=(0.045, 0.13),
        mouth_width=(0.17, 0.33),
        mouth_height=(0.05, 0.17),
        smile=(-1.0, 2.2),
        light=0.7,
        gain=(0.6, 1.2),
        occluder_rate=0.35,
    ),
}


def world_tag(world: str) -> str:
    """The suffix that keeps a toy world's cached files and result keys apart: empty for
    ``"base"`` (so base-world names predate worlds and stay valid), else ``"_<world>"``."""
    resolve_variation(world)
    return "" if world == "base" else f"_{world}"


def resolve_variation(variation: str | Variation) -> Variation:
    """The :class:`Variation` of a world name of :data:`VARIATIONS` (or ``variation``
    itself); anything else is a ValueError listing the valid names."""
    if isinstance(variation, Variation):
        return variation
    if not isinstance(variation, str) or variation not in VARIATIONS:
        raise ValueError(f"unknown toy variation {variation!r:.80}; valid: {sorted(VARIATIONS)}")
    return VARIATIONS[variation]


class _Params:
    """Hands out the columns of a (B, P) uniform matrix as named, scaled parameters."""

    def __init__(self, u: torch.Tensor) -> None:
        self.u = u
        self.i = 0

    def uniform(self, lo: float, hi: float) -> torch.Tensor:
        """Next parameter, uniform in [lo, hi), shaped (B, 1, 1) to broadcast on images."""
        if self.i >= self.u.shape[1]:
            raise RuntimeError("toy renderer ran out of per-seed parameters; raise _NUM_PARAMS")
        col = self.u[:, self.i]
        self.i += 1
        return (lo + (hi - lo) * col).view(-1, 1, 1)

    def chance(self, p: float) -> torch.Tensor:
        """Next parameter as a boolean (B, 1, 1), true with probability p."""
        return self.uniform(0.0, 1.0) < p

    def choice(self, n: int) -> torch.Tensor:
        """Next parameter as an index in [0, n), shaped (B,)."""
        return (self.uniform(0.0, 1.0).view(-1) * n).long().clamp_(max=n - 1)


def _as_seed(value: Any) -> int | None:
    """One seed as a Python int, or None for anything that is not an integer (bools,
    floats, strings, bool tensors and numpy bools included)."""
    if isinstance(value, np.bool_) or (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool
    ):
        return None
    return as_index(value)


def _seed_list(seeds: Sequence[int] | torch.Tensor) -> list[int]:
    """``seeds`` as a non-empty list of ints in ``[0, SEED_LIMIT)``; a ValueError for
    anything else (nothing is truncated: 1.7 is refused, not read as 1)."""
    if isinstance(seeds, torch.Tensor):
        if (
            seeds.dim() != 1
            or seeds.is_floating_point()
            or seeds.is_complex()
            or (seeds.dtype == torch.bool)
        ):
            raise ValueError(
                f"seeds must be a 1-D integer tensor, got {seeds.dtype} {tuple(seeds.shape)}"
            )
        out = [int(s) for s in seeds.tolist()]
    else:
        if isinstance(seeds, (str, bytes)):
            raise ValueError(f"seeds must be a sequence of integers, got {seeds!r:.80}")
        out = []
        for i, s in enumerate(seeds):
            seed = _as_seed(s)
            if seed is None:
                raise ValueError(
                    f"seeds must be integers (not bools, floats or strings), got "
                    f"seeds[{i}] = {s!r:.80}"
                )
            out.append(seed)
    if not out:
        raise ValueError("seeds is empty: pass at least one seed")
    bad = [s for s in out if s < 0 or s >= SEED_LIMIT]
    if bad:
        raise ValueError(
            f"seeds must be non-negative integers below 2**32 (the renderer's generator keeps "
            f"a seed's low 32 bits, so larger seeds would repeat smaller seeds' faces), "
            f"got {bad[:5]}"
        )
    return out


def _draw_randomness(
    seeds: list[int], size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-seed uniforms (B, P), blob noise (B, 4, r, r) and pixel noise (B, 3, S, S), on CPU."""
    params, blobs, pixel = [], [], []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        params.append(torch.rand(_NUM_PARAMS, generator=g))
        blobs.append(torch.randn(4, _BLOB_RES, _BLOB_RES, generator=g))
        pixel.append(torch.randn(3, size, size, generator=g))
    return torch.stack(params), torch.stack(blobs), torch.stack(pixel)


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] (same shapes) -> RGB stacked on a new dim 1."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    ch = v.unsqueeze(1) - (v * s).unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return ch


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t


class _Canvas:
    """A batch of images and masks drawn in painter's order."""

    def __init__(self, img: torch.Tensor, sharpness: torch.Tensor) -> None:
        self.img = img  # (B, 3, H, W)
        self.mask = torch.zeros(img.shape[0], *img.shape[2:], dtype=torch.long, device=img.device)
        self.sharpness = sharpness  # (B, 1, 1)

    def paint(self, d: torch.Tensor, colour: torch.Tensor, cls: int) -> torch.Tensor:
        """Blend ``colour`` ((B, 3) or (B, 3, H, W)) where ``d < 0``; return the alpha."""
        alpha = torch.sigmoid(-d * self.sharpness)
        if colour.dim() == 2:
            colour = colour[:, :, None, None]
        a = alpha.unsqueeze(1)
        self.img = self.img * (1 - a) + colour * a
        self.mask = torch.where(d < 0, torch.full_like(self.mask, cls), self.mask)
        return alpha


def _dist(f: torch.Tensor) -> torch.Tensor:
    """Level set f (B, H, W) -> approximate signed distance in pixels, same sign as f."""
    gy, gx = torch.gradient(f, dim=(-2, -1))
    return f / (torch.sqrt(gx * gx + gy * gy) + 1e-6)


def _ellipse(u: torch.Tensor, v: torch.Tensor, cx, cy, rx, ry) -> torch.Tensor:
    """Level set of an axis-aligned ellipse in (u, v): negative inside."""
    return torch.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2) - 1


def _rotate(u: torch.Tensor, v: torch.Tensor, cx, cy, angle) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates relative to (cx, cy), rotated by -angle (so shapes appear rotated by angle)."""
    c, s = torch.cos(angle), torch.sin(angle)
    du, dv = u - cx, v - cy
    return c * du + s * dv, -s * du + c * dv


def _blur3(img: torch.Tensor) -> torch.Tensor:
    """Separable [1, 2, 1] / 4 blur, replicate padding, per channel."""
    k = torch.tensor([0.25, 0.5, 0.25], dtype=img.dtype, device=img.device)
    c = img.shape[1]
    x = F.pad(img, (1, 1, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 3).expand(c, 1, 1, 3), groups=c)
    x = F.pad(x, (0, 0, 1, 1), mode="replicate")
    return F.conv2d(x, k.view(1, 1, 3, 1).expand(c, 1, 3, 1), groups=c)


# Colour tables (RGB in [0, 1]).
_SKIN_LIGHT = (0.97, 0.82, 0.70)
_SKIN_DARK = (0.33, 0.20, 0.13)
_HAIR = (
    (0.07, 0.05, 0.04),  # black
    (0.30, 0.18, 0.09),  # dark brown
    (0.52, 0.34, 0.18),  # light brown
    (0.86, 0.70, 0.42),  # blonde
    (0.62, 0.26, 0.10),  # red
    (0.62, 0.60, 0.58),  # grey
)
_IRIS = (
    (0.25, 0.45, 0.75),  # blue
    (0.30, 0.55, 0.30),  # green
    (0.45, 0.28, 0.12),  # brown
    (0.20, 0.12, 0.06),  # dark brown
    (0.50, 0.55, 0.58),  # grey
)


def _check_size(size: Any) -> int:
    """``size`` as an int >= :data:`MIN_SIZE`; a bool, a float or a smaller int is a
    ValueError naming ``size``."""
    number = as_index(size)
    if number is None:
        raise ValueError(f"size must be an int (pixels), got {size!r:.80}")
    if number < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {number}")
    return number


def render_faces(
    seeds: Sequence[int] | torch.Tensor,
    size: int = 64,
    device: torch.device | str | None = None,
    variation: str | Variation = "base",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one cartoon face per seed.

    Args:
        seeds: integer seeds in ``[0, 2**32)`` (:data:`SEED_LIMIT`; bools, floats and
            larger seeds are a ValueError); sample i depends only on ``seeds[i]``.
        size: image height and width in pixels, an int >= :data:`MIN_SIZE` (the toy
            world is defined at 64).
        device: where to render (default CPU). Randomness is drawn on the CPU, so
            the result does not depend on the device beyond float rounding.
        variation: the world's nuisance ranges, a name of :data:`VARIATIONS` or a
            :class:`Variation`. A seed draws the same parameters in every world, so
            ``"wide"`` shows the base face of the same seed moved, rescaled and relit.

    Returns:
        ``(images, masks)``: float (B, 3, size, size) in [0, 1] and int64 (B, size, size)
        with class ids in ``[0, NUM_CLASSES)`` (see :data:`CLASS_NAMES`).
    """
    seed_list = _seed_list(seeds)
    var = resolve_variation(variation)
    size = _check_size(size)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    u_all, blob_noise, pixel_noise = _draw_randomness(seed_list, size)
    u_all, blob_noise, pixel_noise = u_all.to(dev), blob_noise.to(dev), pixel_noise.to(dev)
    P = _Params(u_all)
    B = len(seed_list)

    # Pixel centres in [-1, 1], y down.
    t = (torch.arange(size, device=dev, dtype=torch.float32) + 0.5) / size * 2 - 1
    Y, X = torch.meshgrid(t, t, indexing="ij")
    X, Y = X.expand(B, size, size), Y.expand(B, size, size)

    # ---- global pose ------------------------------------------------------------------
    cx = P.uniform(-var.centre_x, var.centre_x)
    cy = P.uniform(*var.centre_y)
    scale = P.uniform(*var.scale)  # image units per face unit (head half-height)
    angle = P.uniform(-var.rotation, var.rotation)
    u, v = _rotate(X, Y, cx, cy, angle)
    u, v = u / scale, v / scale

    # ---- colours ------------------------------------------------------------------------
    tone = P.uniform(0.0, 1.0)
    skin = _lerp(
        torch.tensor(_SKIN_LIGHT, device=dev), torch.tensor(_SKIN_DARK, device=dev), tone.view(B, 1)
    )
    skin = (skin * P.uniform(0.92, 1.08).view(B, 1)).clamp(0, 1)
    hair_tab = torch.tensor(_HAIR, device=dev)
    hair = _lerp(
        hair_tab[P.choice(len(_HAIR))],
        hair_tab[P.choice(len(_HAIR))],
        P.uniform(0, 0.35).view(B, 1),
    )
    hair = (hair * P.uniform(0.85, 1.15).view(B, 1)).clamp(0, 1)
    iris_tab = torch.tensor(_IRIS, device=dev)
    iris = (iris_tab[P.choice(len(_IRIS))] * P.uniform(0.8, 1.2).view(B, 1)).clamp(0, 1)
    lip_red = torch.tensor([0.78, 0.25, 0.30], device=dev)
    lips = _lerp(skin, lip_red, P.uniform(0.3, 0.85).view(B, 1)) * P.uniform(0.75, 1.0).view(B, 1)
    cloth = _hsv_to_rgb(
        P.uniform(0, 1).view(B), P.uniform(0.1, 0.9).view(B), P.uniform(0.2, 0.95).view(B)
    )

    # Background: random colour, or borrowed from the skin / hair range (colour overlap).
    bg_kind = P.uniform(0, 1).view(B, 1)
    bg_rand = _hsv_to_rgb(
        P.uniform(0, 1).view(B), P.uniform(0.05, 0.8).view(B), P.uniform(0.25, 0.95).view(B)
    )
    bg_jit = P.uniform(0.8, 1.2).view(B, 1)
    bg_a = torch.where(
        bg_kind < 0.55, bg_rand, torch.where(bg_kind < 0.8, skin * bg_jit, hair * bg_jit)
    ).clamp(0, 1)
    bg_b = _hsv_to_rgb(
        P.uniform(0, 1).view(B), P.uniform(0.05, 0.7).view(B), P.uniform(0.2, 0.95).view(B)
    )
    bg_b = _lerp(bg_a, bg_b, P.uniform(0.0, 0.7).view(B, 1))
    g_ang = P.uniform(0, 2 * math.pi)
    grad_t = (X * torch.cos(g_ang) + Y * torch.sin(g_ang)) * 0.5 + 0.5
    bg = _lerp(bg_a[:, :, None, None], bg_b[:, :, None, None], grad_t.unsqueeze(1))
    blobs = F.interpolate(blob_noise, size=(size, size), mode="bicubic", align_corners=False)
    bg = bg * (1 + P.uniform(0.0, 0.25).unsqueeze(1) * blobs[:, 0:1])
    s_ang = P.uniform(0, math.pi)
    stripes = torch.sin(
        (X * torch.cos(s_ang) + Y * torch.sin(s_ang)) * P.uniform(4, 14) + P.uniform(0, 2 * math.pi)
    )
    bg = bg * (
        1
        + (P.uniform(0, 1) < 0.35).float().unsqueeze(1)
        * P.uniform(0.03, 0.15).unsqueeze(1)
        * stripes.unsqueeze(1)
    )

    sharp = P.uniform(2.2, 4.5)
    canvas = _Canvas(bg, sharp)

    # ---- shape parameters (face units: head half-height 1, u right, v down) -------------
    head_a = P.uniform(0.70, 0.86)
    jaw = P.uniform(0.0, 0.35)
    chin = P.uniform(0.98, 1.12)
    feat_dx = P.uniform(-var.yaw, var.yaw)  # fake yaw: features slide sideways
    hair_style = P.uniform(0, 1)  # < 0.08 bald, < 0.45 long, else short
    bald = hair_style < 0.08
    long_hair = (hair_style >= 0.08) & (hair_style < 0.45)

    # Cloth (shoulders), neck.
    f_cloth = _ellipse(
        u, v, 0.0, P.uniform(2.05, 2.3), P.uniform(1.35, 1.75), P.uniform(0.75, 0.95)
    )
    neck_w = P.uniform(0.30, 0.42)
    f_neck = (((u / neck_w) ** 4 + ((v - 1.05) / 0.75) ** 4) ** 0.25) - 1

    # Long hair behind the head.
    f_hair_back = _ellipse(
        u, v, 0.0, P.uniform(0.15, 0.35), head_a + P.uniform(0.18, 0.35), P.uniform(1.25, 1.45)
    )
    f_hair_back = torch.where(long_hair, f_hair_back, torch.full_like(f_hair_back, _FAR))
    canvas.paint(_dist(f_hair_back), hair, _C["hair"])

    neck_shade = 0.78 + 0.1 * torch.clamp(1 - v + 0.5, 0, 1)
    canvas.paint(_dist(f_neck), skin[:, :, None, None] * neck_shade.unsqueeze(1), _C["neck"])
    cloth_tex = 1 + 0.08 * blobs[:, 2:3]
    canvas.paint(_dist(f_cloth), cloth[:, :, None, None] * cloth_tex, _C["cloth"])

    # Ears, then the head over their inner half.
    ear_v = P.uniform(-0.05, 0.15)
    ear_rx, ear_ry = P.uniform(0.13, 0.19), P.uniform(0.20, 0.28)
    f_ears = torch.minimum(
        _ellipse(u, v, -head_a * 0.98, ear_v, ear_rx, ear_ry),
        _ellipse(u, v, head_a * 0.98, ear_v, ear_rx, ear_ry),
    )
    canvas.paint(_dist(f_ears), skin * 0.9, _C["ear"])

    width = head_a * (1 - jaw * torch.clamp(v, 0, 1) ** 1.5)
    height = torch.where(v > 0, chin, torch.ones_like(v))
    r_head = torch.sqrt((u / width) ** 2 + (v / height) ** 2)
    f_head = r_head - 1
    light_dir = P.uniform(0, 2 * math.pi)
    face_shade = 1 - 0.18 * r_head.clamp(0, 1) ** 2 * (
        0.6 + 0.4 * (torch.cos(light_dir) * u + torch.sin(light_dir) * v).clamp(-1, 1)
    )
    canvas.paint(_dist(f_head), skin[:, :, None, None] * face_shade.unsqueeze(1), _C["skin"])

    # Hair on top: a cap slightly larger than the head, above a wavy hairline.
    hairline = (
        P.uniform(-0.72, -0.42)
        + P.uniform(0.0, 1.1) * u**2
        + P.uniform(0.0, 0.08) * torch.sin(u * P.uniform(6, 14) + P.uniform(0, 2 * math.pi))
    )
    f_cap = _ellipse(
        u, v, 0.0, P.uniform(-0.08, 0.0), head_a + P.uniform(0.04, 0.12), P.uniform(1.06, 1.16)
    )
    f_hair = torch.maximum(_dist(f_cap), _dist(v - hairline))
    f_hair = torch.where(bald, torch.full_like(f_hair, _FAR), f_hair)
    strands = (
        1 + 0.06 * torch.sin(u * 40 + P.uniform(0, 2 * math.pi)) * (P.uniform(0, 1) < 0.5).float()
    )
    canvas.paint(f_hair, hair[:, :, None, None] * strands.unsqueeze(1), _C["hair"])

    # Eyes: eyebrow, eye white, iris, pupil.
    eye_x = P.uniform(0.28, 0.38)
    eye_y = P.uniform(-0.18, -0.02)
    eye_rx, eye_ry = P.uniform(0.15, 0.21), P.uniform(*var.eye_height)
    brow_dy = P.uniform(0.17, 0.26)
    brow_rx, brow_ry = P.uniform(0.16, 0.24), P.uniform(0.04, 0.065)
    brow_tilt = P.uniform(-0.35, 0.25)
    brow_arch = P.uniform(0.0, 1.5)
    iris_r = P.uniform(0.09, 0.115)
    pupil_frac = P.uniform(0.5, 0.62)
    gaze_x, gaze_y = P.uniform(-0.5, 0.5), P.uniform(-0.3, 0.3)
    brow_col = hair * P.uniform(0.55, 0.9).view(B, 1)
    white = torch.ones(B, 3, device=dev) * P.uniform(0.86, 1.0).view(B, 1)
    pupil_col = torch.ones(B, 3, device=dev) * P.uniform(0.02, 0.1).view(B, 1)
    d_brows, d_eyes, d_iris, d_pupil = [], [], [], []
    for side in (-1.0, 1.0):
        ex = side * eye_x + feat_dx
        bu, bv = _rotate(u, v, ex, eye_y - brow_dy, side * brow_tilt)
        bv = bv - brow_arch * bu**2
        d_brows.append(_dist(_ellipse(bu, bv, 0.0, 0.0, brow_rx, brow_ry)))
        d_eye = _dist(_ellipse(u, v, ex, eye_y, eye_rx, eye_ry))
        d_eyes.append(d_eye)
        ix = ex + gaze_x * (eye_rx - iris_r * 0.7)
        iy = eye_y + gaze_y * eye_ry * 0.5
        d_iris.append(torch.maximum(_dist(_ellipse(u, v, ix, iy, iris_r, iris_r)), d_eye))
        pr = iris_r * pupil_frac
        d_pupil.append(torch.maximum(_dist(_ellipse(u, v, ix, iy, pr, pr)), d_eye))
    canvas.paint(torch.minimum(*d_brows), brow_col, _C["eyebrow"])
    canvas.paint(torch.minimum(*d_eyes), white, _C["eye_white"])
    canvas.paint(torch.minimum(*d_iris), iris, _C["iris"])
    canvas.paint(torch.minimum(*d_pupil), pupil_col, _C["pupil"])

    # Nose and nostrils.
    nose_x = 1.4 * feat_dx
    nose_y = P.uniform(0.22, 0.36)
    nose_rx, nose_ry = P.uniform(0.09, 0.14), P.uniform(0.14, 0.22)
    d_nose = _dist(_ellipse(u, v, nose_x, nose_y, nose_rx, nose_ry))
    nose_shade = 0.84 + 0.1 * torch.clamp((u - nose_x) / nose_rx, -1, 1)
    canvas.paint(d_nose, skin[:, :, None, None] * nose_shade.unsqueeze(1), _C["nose"])
    nos_rx, nos_ry = P.uniform(0.05, 0.07), P.uniform(0.035, 0.05)
    nos_y = nose_y + nose_ry * 0.55
    d_nostrils = torch.minimum(
        _dist(_ellipse(u, v, nose_x - nose_rx * 0.5, nos_y, nos_rx, nos_ry)),
        _dist(_ellipse(u, v, nose_x + nose_rx * 0.5, nos_y, nos_rx, nos_ry)),
    )
    canvas.paint(d_nostrils, skin * 0.35, _C["nostril"])

    # Mouth (lips and, when open, a dark inside) and teeth.
    mouth_x = 1.1 * feat_dx
    mouth_y = P.uniform(0.56, 0.68)
    mouth_rx, mouth_ry = P.uniform(*var.mouth_width), P.uniform(*var.mouth_height)
    smile = P.uniform(*var.smile)
    open_mouth = P.chance(0.45)
    mu = u - mouth_x
    mv = v - mouth_y + smile * mu**2
    d_mouth = _dist(_ellipse(mu, mv, 0.0, 0.0, mouth_rx, mouth_ry))
    canvas.paint(d_mouth, lips, _C["mouth"])
    inner_ry = mouth_ry * P.uniform(0.5, 0.75)
    f_inner = _ellipse(mu, mv, 0.0, 0.0, mouth_rx * 0.8, inner_ry)
    f_inner = torch.where(open_mouth, f_inner, torch.full_like(f_inner, _FAR))
    d_inner = _dist(f_inner)
    inner_col = torch.tensor([0.25, 0.05, 0.06], device=dev).expand(B, 3)
    alpha_inner = torch.sigmoid(-d_inner * canvas.sharpness).unsqueeze(1)
    canvas.img = canvas.img * (1 - alpha_inner) + inner_col[:, :, None, None] * alpha_inner
    d_teeth = torch.maximum(d_inner, _dist(mv + inner_ry * P.uniform(0.0, 0.3)))
    teeth_col = torch.tensor([0.95, 0.93, 0.85], device=dev) * P.uniform(0.85, 1.0).view(B, 1)
    canvas.paint(d_teeth, teeth_col, _C["teeth"])

    # ---- occluder (wide world only): a rod in front of the face, labeled background ---
    if var.occluder_rate > 0:
        Q = _Params(u_all[:, _OCCLUDER_COLUMN:])  # own columns: the face's draws stay put
        occ_on = Q.chance(var.occluder_rate)
        ou, ov = _rotate(X, Y, Q.uniform(-0.6, 0.6), Q.uniform(-0.3, 0.9), Q.uniform(0, math.pi))
        f_occ = _ellipse(ou, ov, 0.0, 0.0, Q.uniform(0.5, 1.2), Q.uniform(0.06, 0.16))
        f_occ = torch.where(occ_on, f_occ, torch.full_like(f_occ, _FAR))
        occ_col = _hsv_to_rgb(
            Q.uniform(0, 1).view(B), Q.uniform(0.1, 0.8).view(B), Q.uniform(0.2, 0.95).view(B)
        )
        canvas.paint(_dist(f_occ), occ_col, _C["background"])

    # ---- global photometric nuisances ---------------------------------------------------
    img = canvas.img
    l_ang = P.uniform(0, 2 * math.pi)
    light = 1 + P.uniform(0.0, var.light) * (X * torch.cos(l_ang) + Y * torch.sin(l_ang))
    img = img * light.unsqueeze(1)
    img = img * P.uniform(*var.gain).unsqueeze(1) + P.uniform(-0.05, 0.05).unsqueeze(1)
    blur_t = P.uniform(0.0, 0.5).unsqueeze(1)
    img = _lerp(img, _blur3(img), blur_t)
    img = img + P.uniform(0.0, 0.03).unsqueeze(1) * pixel_noise
    if P.i > _OCCLUDER_COLUMN:
        raise RuntimeError("the face's parameters reach the occluder's columns; raise them")
    return img.clamp(0, 1), canvas.mask


def split_seeds(name: str, start: int = 0, count: int | None = None) -> range:
    """The seeds of split ``name`` from its ``start``-th sample, ``count`` of them (all if None)."""
    if name not in SPLITS:
        raise KeyError(f"unknown toy split {name!r}; valid: {sorted(SPLITS)}")
    r = SPLITS[name]
    start = check_int(start, "start")  # a float was a raw TypeError, True counted as 1
    count = None if count is None else check_int(count, "count")
    if start < 0 or start > len(r):
        raise ValueError(f"start={start} outside split {name!r} of {len(r)} samples")
    stop = len(r) if count is None else start + count
    if count is not None and (count < 0 or stop > len(r)):
        raise ValueError(
            f"split {name!r} has {len(r)} samples; start={start} count={count} runs past its end"
        )
    return r[start:stop]


def render_split(
    name: str,
    start: int = 0,
    count: int | None = None,
    batch_size: int = 256,
    size: int = 64,
    device: torch.device | str | None = None,
    variation: str | Variation = "base",
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Render a split in batches: yields ``(seeds, images, masks)``, seeds an int64 (B,) tensor.

    Every argument is checked when it is called, not at the first batch (a bad
    ``batch_size`` or ``size`` used to fail only when the loop began)."""
    batch_size = check_int(batch_size, "batch_size", 1)
    seeds = split_seeds(name, start, count)
    size = _check_size(size)
    variation = resolve_variation(variation)
    dev = torch.device(device) if device is not None else None
    return _render_batches(seeds, batch_size, size, dev, variation)


def _render_batches(
    seeds: Sequence[int],
    batch_size: int,
    size: int,
    device: torch.device | None,
    variation: Variation,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i : i + batch_size]
        images, masks = render_faces(chunk, size=size, device=device, variation=variation)
        yield torch.tensor(list(chunk), dtype=torch.long), images, masks


def class_pixel_rates(masks: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Share of pixels per class over all masks: float (K,) summing to 1 (ignoring ids >= K).

    ``masks`` must hold integer class ids and ``num_classes`` be an int >= 1 (else a
    ValueError)."""
    num_classes = check_int(num_classes, "num_classes", 1)
    if masks.is_floating_point() or masks.is_complex() or masks.dtype == torch.bool:
        raise ValueError(f"masks must hold integer class ids, got dtype {masks.dtype}")
    m = masks.reshape(-1)
    m = m[(m >= 0) & (m < num_classes)]
    counts = torch.bincount(m, minlength=num_classes).double()
    return counts / counts.sum().clamp(min=1)


def colorize_mask(masks: torch.Tensor, palette: torch.Tensor = PALETTE) -> torch.Tensor:
    """Class ids (..., H, W) -> uint8 RGB (..., 3, H, W) with the palette (ids >= K -> white)."""
    pal = torch.cat([palette, torch.full((1, 3), 255, dtype=torch.uint8)]).to(masks.device)
    k = len(palette)
    idx = torch.where((masks >= 0) & (masks < k), masks, torch.full_like(masks, k))
    return pal[idx].movedim(-1, -3)
