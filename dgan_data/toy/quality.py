"""Quality of a toy-world generator, measured with the toy annotator.

No Inception weights can be downloaded here, so FID/KID in their usual form are out
of reach. The toy annotator (a U-Net trained on real labeled renders) stands in for
the Inception network twice:

- **KID** (Kernel Inception Distance, Binkowski et al. 2018) on *annotator features*:
  the global average pool of the deepest stage of the annotator's encoder. A
  real-vs-real KID between two disjoint real sets gives the floor a perfect
  generator would reach with the same sample sizes.
- **Part validity**: the share of images in which the annotator finds a plausible
  face (a head, exactly two eyes, a nose and a mouth). It catches the failure that
  matters most for DatasetGAN, samples whose parts the annotator cannot label, and it
  reads directly as a percentage.

Real reference images come from :data:`REAL_EVAL_SEEDS`, train-split seeds that
neither the toy GAN (trained on the first 10 000 train seeds) nor the shipped
annotator (trained on the pool split) has seen.

KID values are small for these 128-D features; the example script prints them
multiplied by 1000, as is customary.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..conventions import check_int
from ..fileio import atomic_write
from ..seeds import z_from_seeds
from .annotator import ToyAnnotator, annotate
from .render import CLASS_NAMES, SPLITS, VARIATIONS, Variation, render_faces

logger = logging.getLogger(__name__)

__all__ = [
    "EYE_CLASSES",
    "EYE_MAX_PIXELS",
    "EYE_MIN_PIXELS",
    "HEAD_CLASSES",
    "HEAD_MAX_FRACTION",
    "HEAD_MIN_FRACTION",
    "KID_FLOOR_FACTOR",
    "MOUTH_CLASSES",
    "MOUTH_MIN_PIXELS",
    "NOSE_CLASSES",
    "NOSE_MIN_PIXELS",
    "REAL_EVAL_SEEDS",
    "annotator_features",
    "compare_diversity",
    "connected_components",
    "diversity_stats",
    "evaluate_generator",
    "generate_images",
    "kid",
    "kid_gate",
    "part_validity",
    "reason_counts",
    "render_images",
    "save_comparison_grid",
]

_C = {name: i for i, name in enumerate(CLASS_NAMES)}

#: Real reference seeds: train seeds 40 000 .. 49 999. The toy GAN saw only the first
#: 10 000 train seeds and the annotator only the pool split, so these are unseen by
#: both. :func:`evaluate_generator` takes its two disjoint real sets from here, which
#: allows up to 5 000 images per set.
REAL_EVAL_SEEDS: range = SPLITS["train"][40_000:50_000]

# ---- part-validity thresholds (64 x 64 masks; see part_validity for how they were set)
#: Classes whose pixels form the head region (the skin class alone).
HEAD_CLASSES: tuple[int, ...] = (_C["skin"],)
#: Minimum share of skin pixels for a head (real renders: min 8.4 %, 1 % quantile 9.4 %).
HEAD_MIN_FRACTION: float = 0.04
#: Maximum share of skin pixels (real renders: max 25.2 %); more is a skin blob, not a face.
HEAD_MAX_FRACTION: float = 0.45
#: Classes that make up an eye (eye white with iris and pupil on top).
EYE_CLASSES: tuple[int, ...] = (_C["eye_white"], _C["iris"], _C["pupil"])
#: Eye components smaller than this are specks and are ignored (real eyes: min 10 px;
#: the shipped annotator leaves no stray specks on the 1 000 test renders).
EYE_MIN_PIXELS: int = 4
#: An eye component larger than this is implausible (real eyes: max 35 px).
EYE_MAX_PIXELS: int = 80
#: Classes that make up the nose.
NOSE_CLASSES: tuple[int, ...] = (_C["nose"], _C["nostril"])
#: Minimum nose pixels (real renders: min 12 px, annotator masks min 11 px).
NOSE_MIN_PIXELS: int = 5
#: Classes that make up the mouth.
MOUTH_CLASSES: tuple[int, ...] = (_C["mouth"], _C["teeth"])
#: Minimum mouth pixels (real renders: min 11 px, annotator masks min 12 px).
MOUTH_MIN_PIXELS: int = 5

#: The annotator's input size: generated images of another size are resized to it.
EVAL_SIZE: int = 64


# ------------------------------------------------------------------ features
def _encoder(model: nn.Module) -> tuple[nn.Module, bool]:
    """The smp encoder inside ``model`` and whether inputs must be mapped [0,1] -> [-1,1]."""
    if isinstance(model, ToyAnnotator):
        return model.net.encoder, True  # ToyAnnotator.forward feeds the net images * 2 - 1
    if hasattr(model, "encoder"):
        return model.encoder, False
    raise TypeError(
        f"annotator_features needs a ToyAnnotator or an smp model with .encoder, "
        f"got {type(model).__name__}"
    )


@torch.no_grad()
def annotator_features(
    model: nn.Module, images: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """Pooled annotator features of images (N, 3, H, W) in [0, 1]: float32 (N, D) on the CPU.

    The global average pool of the deepest encoder stage (D = 128 for the shipped
    annotator's ResNet-18 stem at depth 3) plays the role of Inception's pool3 in KID.
    Inputs are preprocessed exactly as :class:`ToyAnnotator` does before its network.
    Zero images give an empty (0, D) tensor.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W) in [0, 1], got {tuple(images.shape)}")
    batch_size = check_int(batch_size, "batch_size", 1)
    encoder, rescale = _encoder(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    # at least one pass, so an empty batch still tells the feature width D
    for i in range(0, max(len(images), 1), batch_size):
        x = images[i : i + batch_size].to(device, torch.float32)
        if rescale:
            x = x * 2 - 1
        deepest = encoder(x)[-1]
        out.append(deepest.mean(dim=(2, 3)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


# ----------------------------------------------------------------------- KID
def kid(
    feats_a: torch.Tensor,
    feats_b: torch.Tensor,
    num_subsets: int = 10,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance between two feature sets (N_a, d) and (N_b, d).

    The squared MMD with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1) ** 3``,
    estimated without bias on ``num_subsets`` random subsets of ``m`` rows from each set
    (drawn without replacement; ``m = min(subset_size, N_a, N_b)``):

        MMD^2_u = 1 / (m (m - 1)) * sum_{i != j} [k(a_i, a_j) + k(b_i, b_j)]
                  - 2 / m^2 * sum_{i, j} k(a_i, b_j)

    The mean over subsets is KID; the standard deviation (population, ddof 0, as in
    torch-fidelity) shows its spread. Same as torch-fidelity's and clean-fid's
    ``kernel_distance``. The unbiased estimate can be slightly negative for equal
    distributions. Computed in float64; deterministic for a given ``seed``.

    When neither set is larger than ``subset_size``, every subset is the whole of both
    sets, so the subsets cannot differ: the std is then about 0 and says nothing about
    the estimate's spread. ``kid`` logs a warning in that case (and still returns that
    std); pass a smaller ``subset_size`` or more samples for a meaningful spread.

    Non-finite features (NaN or inf), zero-width features (d = 0), a ``subset_size``
    below 2, a ``num_subsets`` below 1, a ``seed`` that is not an int and sets of fewer
    than 2 rows are a ValueError.

    Returns:
        ``(mean, std)`` of MMD^2_u over the subsets.
    """
    if feats_a.ndim != 2 or feats_b.ndim != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(
            f"kid needs two (N, d) feature sets of equal d, got {tuple(feats_a.shape)} "
            f"and {tuple(feats_b.shape)}"
        )
    if feats_a.shape[1] == 0:
        raise ValueError(
            f"kid needs at least one feature column: feats_a and feats_b are "
            f"{tuple(feats_a.shape)} and {tuple(feats_b.shape)}"
        )
    num_subsets = check_int(num_subsets, "num_subsets", 1)
    subset_size = check_int(subset_size, "subset_size", 2)
    seed = check_int(seed, "seed")
    a = feats_a.detach().to("cpu", torch.float64)
    b = feats_b.detach().to("cpu", torch.float64)
    for name, feats in (("feats_a", a), ("feats_b", b)):
        finite = torch.isfinite(feats)
        if not bool(finite.all()):
            raise ValueError(
                f"kid needs finite features: {name} holds {int((~finite).sum())} NaN or inf "
                f"value(s) in {int((~finite).any(1).sum())} of its {len(feats)} rows"
            )
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"kid needs at least 2 samples per set, got {len(a)} and {len(b)}")
    if m < subset_size:
        logger.info(
            "kid: subset size %d reduced to %d (set sizes %d, %d)", subset_size, m, len(a), len(b)
        )
    if m == len(a) == len(b) and num_subsets > 1:
        logger.warning(
            "kid: neither set (%d and %d rows) is larger than the subset size %d, so all %d "
            "subsets are the whole sets and their std is about 0: it does not measure the "
            "estimate's spread (use a smaller subset_size for that)",
            len(a),
            len(b),
            subset_size,
            num_subsets,
        )
    d = a.shape[1]
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
            m * (m - 1)
        )
        values.append(float(within - 2 * k_xy.sum() / (m * m)))
    v = torch.tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std(unbiased=False))


#: The GAN gate's KID rule: generated-vs-real KID <= this factor x the real-vs-real floor
#: (the floor's mean; its std is recorded, not added).
KID_FLOOR_FACTOR: float = 2.0


def kid_gate(kid_mean: float, kid_real_mean: float, kid_real_std: float) -> dict[str, Any]:
    """The GAN gate's KID test, "KID <= 2x the real-vs-real floor": the threshold is
    :data:`KID_FLOOR_FACTOR` times the floor's mean. Returns the numbers it used,
    JSON-able: ``kid``, ``kid_real_floor``, ``kid_real_std``, ``kid_threshold`` and the
    verdict ``kid_within_2x_floor``. A floor <= 0 (estimation noise on equal
    distributions) makes the threshold <= 0; that is logged as a warning."""
    threshold = KID_FLOOR_FACTOR * kid_real_mean
    if kid_real_mean <= 0:
        logger.warning(
            "the real-vs-real KID floor is %.3g <= 0 (estimation noise): the KID gate's "
            "threshold %g x floor is %.3g",
            kid_real_mean,
            KID_FLOOR_FACTOR,
            threshold,
        )
    return {
        "kid": kid_mean,
        "kid_real_floor": kid_real_mean,
        "kid_real_std": kid_real_std,
        "kid_threshold": threshold,
        "kid_within_2x_floor": bool(kid_mean <= threshold),
    }


# ------------------------------------------------------- connected components
def connected_components(fg: torch.Tensor, connectivity: int = 8, chunk: int = 256) -> torch.Tensor:
    """Label connected components of boolean masks (B, H, W): int64 labels, 0 = background.

    Pure torch: every foreground pixel starts with its own label (its flat index + 1)
    and takes the largest label in its neighbourhood (3x3 max-pool for 8-connectivity,
    the 4 direct neighbours for 4-connectivity) until nothing changes, so each
    component ends up labelled with the largest pixel index it contains. Labels are
    not consecutive. Batched; runs until convergence (at most H * W sweeps, in practice
    about a component's diameter).
    """
    if fg.ndim != 3:
        raise ValueError(f"expected masks (B, H, W), got {tuple(fg.shape)}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    chunk = check_int(chunk, "chunk", 1)  # a chunk < 1 skipped every mask
    out = []
    for start in range(0, len(fg), chunk):
        out.append(_label_chunk(fg[start : start + chunk].bool(), connectivity))
    if not out:
        return torch.zeros(fg.shape, dtype=torch.long, device=fg.device)
    return torch.cat(out)


def _label_chunk(fg: torch.Tensor, connectivity: int) -> torch.Tensor:
    H, W = fg.shape[-2:]
    # float32 holds the integer labels exactly (H * W <= 2**24 for any sane mask).
    idx = torch.arange(1, H * W + 1, device=fg.device, dtype=torch.float32).view(1, H, W)
    labels = torch.where(fg, idx, torch.zeros((), device=fg.device)).unsqueeze(1)
    mask = fg.unsqueeze(1)
    for _ in range(H * W):
        if connectivity == 8:
            grown = F.max_pool2d(labels, 3, stride=1, padding=1)
        else:
            p = F.pad(labels, (1, 1, 1, 1))
            grown = torch.stack(
                [
                    labels,
                    p[..., :-2, 1:-1],
                    p[..., 2:, 1:-1],
                    p[..., 1:-1, :-2],
                    p[..., 1:-1, 2:],
                ]
            ).amax(0)
        grown = torch.where(mask, grown, torch.zeros((), device=fg.device))
        if torch.equal(grown, labels):
            break
        labels = grown
    return labels.squeeze(1).long()


def _component_sizes(labels: torch.Tensor) -> torch.Tensor:
    """Pixel count per label, (B, H * W + 1); column 0 is the background."""
    B, H, W = labels.shape
    n = H * W + 1
    offset = torch.arange(B, device=labels.device).view(B, 1) * n
    flat = (labels.reshape(B, -1) + offset).reshape(-1)
    return torch.bincount(flat, minlength=B * n).view(B, n)


# ------------------------------------------------------------- part validity
def _isin(masks: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    return torch.isin(masks, torch.tensor(list(classes), device=masks.device))


def part_validity(
    masks: torch.Tensor,
    chunk: int = 256,
) -> tuple[float, torch.Tensor, list[list[str]]]:
    """Share of masks (B, H, W) with a plausible face: a head, two eyes, a nose, a mouth.

    An image is valid when all of these hold (thresholds are the module constants,
    in pixels of a 64 x 64 mask; fractions scale with any size):

    - **head**: skin pixels between :data:`HEAD_MIN_FRACTION` and
      :data:`HEAD_MAX_FRACTION` of the image;
    - **eyes**: exactly two 8-connected components of eye pixels
      (:data:`EYE_CLASSES`) with :data:`EYE_MIN_PIXELS` to :data:`EYE_MAX_PIXELS`
      pixels each; smaller components are ignored as specks, larger ones make the
      image invalid;
    - **nose**: at least :data:`NOSE_MIN_PIXELS` nose or nostril pixels;
    - **mouth**: at least :data:`MOUTH_MIN_PIXELS` mouth or teeth pixels.

    The thresholds sit well outside the range of real renders. On the 1 000 test
    renders (exact masks) every image has exactly two 8-connected eye components, and
    the extremes were: skin 8.4 % to 25.2 % of the image, eyes 10 to 35 px, nose >= 12
    px, mouth >= 11 px; all 1 000 are valid. With the shipped annotator's masks of the
    same renders the extremes were skin 8.3 % to 25.3 %, eyes 11 to 35 px, nose >= 11
    px, mouth >= 12 px, no stray eye specks, and all 1 000 are valid. Pixel thresholds
    are for 64 x 64 masks and scale with the mask area.

    Returns:
        ``(rate, valid, reasons)``: the share of valid images, a bool (B,) tensor and
        per image the list of reasons it failed (empty when valid).
    """
    if masks.ndim != 3:
        raise ValueError(f"expected masks (B, H, W), got {tuple(masks.shape)}")
    B, H, W = masks.shape
    chunk = check_int(chunk, "chunk", 1)  # a chunk < 1 skipped the eye check: 0 % valid
    if B == 0:
        return float("nan"), torch.zeros(0, dtype=torch.bool), []
    area_scale = H * W / (64 * 64)
    eye_min = EYE_MIN_PIXELS * area_scale
    eye_max = EYE_MAX_PIXELS * area_scale
    nose_min = NOSE_MIN_PIXELS * area_scale
    mouth_min = MOUTH_MIN_PIXELS * area_scale

    head_frac = _isin(masks, HEAD_CLASSES).flatten(1).float().mean(1)
    nose_px = _isin(masks, NOSE_CLASSES).flatten(1).sum(1)
    mouth_px = _isin(masks, MOUTH_CLASSES).flatten(1).sum(1)
    n_eyes = torch.zeros(B, dtype=torch.long, device=masks.device)
    n_big = torch.zeros(B, dtype=torch.long, device=masks.device)
    for start in range(0, B, chunk):
        eyes = _isin(masks[start : start + chunk], EYE_CLASSES)
        sizes = _component_sizes(connected_components(eyes, 8, chunk))[:, 1:]
        n_eyes[start : start + chunk] = ((sizes >= eye_min) & (sizes <= eye_max)).sum(1)
        n_big[start : start + chunk] = (sizes > eye_max).sum(1)

    reasons: list[list[str]] = [[] for _ in range(B)]
    for i, (hf, ne, nb, npx, mpx) in enumerate(
        zip(
            head_frac.tolist(), n_eyes.tolist(), n_big.tolist(), nose_px.tolist(), mouth_px.tolist()
        )
    ):
        r = reasons[i]
        if hf < HEAD_MIN_FRACTION:
            r.append(f"head: skin {hf:.1%} < {HEAD_MIN_FRACTION:.0%}")
        elif hf > HEAD_MAX_FRACTION:
            r.append(f"head: skin {hf:.1%} > {HEAD_MAX_FRACTION:.0%}")
        if nb:
            r.append(f"eyes: {nb} component(s) over {eye_max:.0f} px")
        if ne != 2:
            r.append(f"eyes: {ne} component(s) of {eye_min:.0f}-{eye_max:.0f} px, need 2")
        if npx < nose_min:
            r.append(f"nose: {npx} px < {nose_min:.0f}")
        if mpx < mouth_min:
            r.append(f"mouth: {mpx} px < {mouth_min:.0f}")
    valid = torch.tensor([not r for r in reasons], dtype=torch.bool)
    return float(valid.float().mean()), valid, reasons


def reason_counts(reasons: list[list[str]]) -> dict[str, int]:
    """How many images failed each check ("head", "eyes", "nose", "mouth")."""
    counts: dict[str, int] = {}
    for r in reasons:
        for part in sorted({s.split(":", 1)[0] for s in r}):
            counts[part] = counts.get(part, 0) + 1
    return counts


# ---------------------------------------------------------------- diversity
#: Classes of the whole head region for pose statistics (skin, ears, face parts, hair).
FACE_REGION_CLASSES: tuple[int, ...] = tuple(
    _C[n]
    for n in (
        "skin",
        "ear",
        "eyebrow",
        "eye_white",
        "iris",
        "pupil",
        "nose",
        "nostril",
        "mouth",
        "teeth",
    )
)
#: An image counts as bald with fewer hair pixels than this share of the image.
BALD_MAX_FRACTION: float = 0.01
#: An image counts as open-mouthed with at least this many teeth pixels (64 x 64 masks).
OPEN_MOUTH_MIN_TEETH: int = 2
#: A generator's diversity statistic must lie within this relative distance of the real one.
DIVERSITY_TOLERANCE: float = 0.20


def diversity_stats(images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Pose, scale and appearance spread of a set of faces, from their masks.

    - ``face_centre_spread``: root mean variance (px) of the face region's centroid
      (skin and face parts, hair excluded), over the images;
    - ``head_area_spread``: standard deviation of the face region's area (px^2) over
      the images that show a face (a faceless image counted as area 0, so a generator
      that sometimes draws no face looked diverse in scale);
    - ``bald_rate``: share of images with hair on fewer than 1 % of the pixels;
    - ``open_mouth_rate``: share of images with visible teeth (>= 2 px at 64 px);
    - ``contrast``: mean over images of the standard deviation of the luminance.

    A collapsed generator shows it here long before part validity drops: its faces sit
    at one place and size, with one hair style and a closed mouth. The two spreads are
    NaN for fewer than two images that show a face.
    """
    if (
        masks.ndim != 3
        or images.ndim != 4
        or images.shape[1] != 3
        or len(images) != len(masks)
        or images.shape[-2:] != masks.shape[-2:]
    ):
        raise ValueError(
            f"expected images (B, 3, H, W) and masks (B, H, W) of the same B, H and W, got "
            f"{tuple(images.shape)} and {tuple(masks.shape)}"
        )
    _, H, W = masks.shape
    scale = H * W / (64 * 64)
    face = _isin(masks, FACE_REGION_CLASSES).float()
    area = face.flatten(1).sum(1)
    ys = torch.arange(H, dtype=torch.float32).view(1, H, 1)
    xs = torch.arange(W, dtype=torch.float32).view(1, 1, W)
    has_face = area > 0
    cy = (face * ys).flatten(1).sum(1)[has_face] / area[has_face]
    cx = (face * xs).flatten(1).sum(1)[has_face] / area[has_face]
    centre_spread = math.sqrt(float(cy.var() + cx.var()) / 2) if len(cy) > 1 else float("nan")
    hair = (masks == _C["hair"]).flatten(1).float().mean(1)
    teeth = (masks == _C["teeth"]).flatten(1).sum(1)
    luminance = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).flatten(1)
    return {
        "face_centre_spread": centre_spread,
        "head_area_spread": float(area[has_face].std()) if len(cy) > 1 else float("nan"),
        "bald_rate": float((hair < BALD_MAX_FRACTION).float().mean()),
        "open_mouth_rate": float((teeth >= OPEN_MOUTH_MIN_TEETH * scale).float().mean()),
        # guarded like the spreads: torch warns "degrees of freedom <= 0" on no images
        "contrast": float(luminance.std(dim=1).mean()) if len(images) else float("nan"),
    }


def _finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or ``None`` when it is missing, NaN or infinite (strict JSON)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def compare_diversity(
    generated: dict[str, float], real: dict[str, float], tolerance: float = DIVERSITY_TOLERANCE
) -> dict[str, Any]:
    """Per statistic: both values, their ratio (generated / real) and whether the ratio
    is within ``tolerance`` of 1 (``ok``), plus ``all_ok``.

    Special cases carry a ``reason`` and store ``None`` (JSON null) for every value that
    is not finite, so the result is strict JSON: a real value of 0 passes exactly when
    the generated one is 0 too (the ratio, undefined or infinite, is ``None``); a NaN or
    ``None`` value (a statistic that could not be measured, such as a spread of fewer than
    two faces) fails.
    """
    out: dict[str, Any] = {}
    for key, r in real.items():
        g = generated[key]
        entry: dict[str, Any] = {"generated": _finite_or_none(g), "real": _finite_or_none(r)}
        if entry["real"] is None or entry["generated"] is None:
            which = "real" if entry["real"] is None else "generated"
            entry |= {
                "ratio": None,
                "ok": False,
                "reason": f"the {which} value is NaN: the statistic could not be measured",
            }
        elif r == 0:
            entry |= {
                "ratio": None,  # 0/0 or x/0: no number (NaN/inf are not JSON)
                "ok": g == 0,
                "reason": "the real value is 0: passes only when the generated value is 0 too",
            }
        else:
            ratio = g / r
            entry |= {"ratio": _finite_or_none(ratio), "ok": bool(abs(ratio - 1.0) <= tolerance)}
        out[key] = entry
    out["all_ok"] = all(v["ok"] for v in out.values() if isinstance(v, dict))
    return out


# --------------------------------------------------------------- image sets
@torch.no_grad()
def generate_images(
    G: nn.Module,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    batch_size: int = 64,
    size: int = EVAL_SIZE,
) -> torch.Tensor:
    """Generated images for ``seeds`` (z from :func:`z_from_seeds`, constant noise) in [0, 1].

    Returns float32 (N, 3, size, size) on the CPU; other resolutions are resized
    (bilinear, antialiased) to the annotator's ``size``.
    """
    batch_size = check_int(batch_size, "batch_size", 1)  # a batch < 1 returned no images
    device = next(G.parameters()).device
    seeds = list(seeds)
    out = []
    for i in range(0, len(seeds), batch_size):
        z = z_from_seeds(seeds[i : i + batch_size], G.z_dim, device=device)
        img, _ = G(z, truncation_psi=truncation_psi, noise="const")
        img = (img.float().clamp(-1, 1) + 1) / 2
        if img.shape[-2:] != (size, size):
            img = F.interpolate(
                img, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            ).clamp(0, 1)
        out.append(img.cpu())
    return torch.cat(out) if out else torch.empty(0, 3, size, size)


def _world_name(variation: str | Variation) -> str:
    """The name of a toy world (``"custom"`` for a Variation that is not a named one)."""
    if isinstance(variation, str):
        return variation
    return next((n for n, v in VARIATIONS.items() if v == variation), "custom")


def render_images(
    seeds: Sequence[int],
    batch_size: int = 250,
    size: int = EVAL_SIZE,
    variation: str | Variation = "base",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real renders of one toy world (``variation``) for ``seeds``: images (N, 3, size,
    size) in [0, 1] and exact masks."""
    batch_size = check_int(batch_size, "batch_size", 1)  # a batch < 1 returned no images
    seeds = list(seeds)
    images, masks = [], []
    for i in range(0, len(seeds), batch_size):
        img, m = render_faces(seeds[i : i + batch_size], size=size, variation=variation)
        images.append(img)
        masks.append(m)
    if not images:
        return torch.empty(0, 3, size, size), torch.empty(0, size, size, dtype=torch.long)
    return torch.cat(images), torch.cat(masks)


# ---------------------------------------------------------------- evaluation
def evaluate_generator(
    G: nn.Module,
    annotator: nn.Module,
    num: int = 2000,
    seed: int = 0,
    truncation_psi: float = 1.0,
    real_seeds: Sequence[int] | None = None,
    num_subsets: int = 10,
    subset_size: int = 1000,
    batch_size: int = 64,
    variation: str | Variation = "base",
) -> dict[str, Any]:
    """KID and part validity of ``G`` against real renders, plus the real-vs-real floor.

    ``num`` generated images come from seeds ``seed .. seed + num - 1`` (constant noise,
    ``truncation_psi``). Two disjoint real sets of ``num`` renders come from
    ``real_seeds`` (default :data:`REAL_EVAL_SEEDS`): the first ``num`` seeds are the
    reference set, the next ``num`` the second set for the real-vs-real KID. Part
    validity uses the annotator's masks for both generated and real images; the
    validity of the exact real masks is reported too. The real renders come from the
    toy world ``variation`` (a name of :data:`~dgan_data.toy.VARIATIONS` or a
    :class:`~dgan_data.toy.Variation`), recorded as ``world``.

    Returns a JSON-able dict: ``kid_mean``/``kid_std`` (generated vs real),
    ``kid_real_mean``/``kid_real_std`` (real vs real), the KID gate (:func:`kid_gate`:
    ``kid_within_2x_floor``, KID <= 2 x ``kid_real_mean``, and ``kid_threshold``, the
    threshold it applied), ``validity_generated``,
    ``validity_real`` (annotator masks), ``validity_real_exact``, per-check failure
    counts, and the settings used.
    """
    # every argument is checked before anything is generated or rendered
    num = check_int(num, "num", 2)
    seed = check_int(seed, "seed", 0)  # generated seeds are seed .. seed + num - 1
    num_subsets = check_int(num_subsets, "num_subsets", 1)
    subset_size = check_int(subset_size, "subset_size", 2)
    batch_size = check_int(batch_size, "batch_size", 1)
    real_seeds = list(REAL_EVAL_SEEDS if real_seeds is None else real_seeds)
    if len(real_seeds) < 2 * num:
        raise ValueError(
            f"need {2 * num} real seeds for two disjoint real sets of {num}, have {len(real_seeds)}"
        )
    seeds_ref, seeds_second = real_seeds[:num], real_seeds[num : 2 * num]
    gen_seeds = list(range(seed, seed + num))
    ann_device = next(annotator.parameters()).device

    def masks_of(images: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                annotate(annotator, images[i : i + batch_size].to(ann_device), batch_size).cpu()
                for i in range(0, len(images), batch_size)
            ]
        )

    logger.info("generating %d images (psi=%.2f)", num, truncation_psi)
    fake = generate_images(G, gen_seeds, truncation_psi, batch_size)
    feats_fake = annotator_features(annotator, fake, batch_size)
    masks_fake = masks_of(fake)
    valid_fake, _, reasons_fake = part_validity(masks_fake)
    diversity_fake = diversity_stats(fake, masks_fake)
    del fake, masks_fake

    logger.info("rendering 2 x %d real images", num)
    real, real_exact = render_images(seeds_ref, variation=variation)
    feats_real = annotator_features(annotator, real, batch_size)
    masks_real = masks_of(real)
    valid_real, _, reasons_real = part_validity(masks_real)
    diversity_real = diversity_stats(real, masks_real)
    diversity_exact = diversity_stats(real, real_exact)
    valid_exact, _, _ = part_validity(real_exact)
    del real, real_exact
    real2, _ = render_images(seeds_second, variation=variation)
    feats_real2 = annotator_features(annotator, real2, batch_size)
    del real2

    kid_mean, kid_std = kid(feats_fake, feats_real, num_subsets, subset_size, seed)
    kid_rr_mean, kid_rr_std = kid(feats_real2, feats_real, num_subsets, subset_size, seed)
    gate = kid_gate(kid_mean, kid_rr_mean, kid_rr_std)
    result = {
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_real_mean": kid_rr_mean,
        "kid_real_std": kid_rr_std,
        "validity_generated": valid_fake,
        "validity_real": valid_real,
        "validity_real_exact": valid_exact,
        "diversity": compare_diversity(diversity_fake, diversity_real),
        "diversity_real_exact": {k: _finite_or_none(v) for k, v in diversity_exact.items()},
        "kid_within_2x_floor": gate["kid_within_2x_floor"],
        "kid_threshold": gate["kid_threshold"],
        "failures_generated": reason_counts(reasons_fake),
        "failures_real": reason_counts(reasons_real),
        "num": num,
        "seed": seed,
        "truncation_psi": truncation_psi,
        "world": _world_name(variation),
        "generated_seeds": [gen_seeds[0], gen_seeds[-1] + 1],
        "real_seeds": [seeds_ref[0], seeds_ref[-1] + 1],
        "real_seeds_second": [seeds_second[0], seeds_second[-1] + 1],
        "num_subsets": num_subsets,
        "subset_size": min(subset_size, num),
        "feature_dim": int(feats_real.shape[1]),
        "features": "annotator encoder, deepest stage, global average pool",
    }
    logger.info(
        "KID %.5f +- %.5f (real floor %.5f), validity gen %.1f%% real %.1f%%",
        kid_mean,
        kid_std,
        kid_rr_mean,
        100 * valid_fake,
        100 * valid_real,
    )
    return result


def save_comparison_grid(
    real: torch.Tensor, fake: torch.Tensor, path: str | Path, nrow: int = 8
) -> Path:
    """Write a PNG: real renders (left block) beside generated samples (right block).

    Both are (N, 3, H, W) in [0, 1]; each block is ``nrow`` images wide, with a
    white gap column between them.
    """
    if real.ndim != 4 or fake.ndim != 4 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real and fake must be image batches of one shape, got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}"
        )
    from torchvision.utils import make_grid, save_image  # on first use: see stream/dataset

    n = min(len(real), len(fake))
    nrow = max(1, min(nrow, n))
    rows = max(1, math.ceil(n / nrow))
    blocks = []
    for batch in (real[:n], fake[:n]):
        pad = rows * nrow - len(batch)
        if pad:
            batch = torch.cat([batch, torch.ones(pad, *batch.shape[1:])])
        blocks.append(make_grid(batch.float().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0))
    gap = torch.ones(3, blocks[0].shape[1], 8)
    grid = torch.cat([blocks[0], gap, blocks[1]], dim=2)
    # atomically: a failed write keeps the earlier grid whole
    return atomic_write(path, lambda f: save_image(grid, f, format="PNG"), named_by_user=True)
