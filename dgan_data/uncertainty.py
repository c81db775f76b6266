"""Ensemble uncertainty: per-pixel Jensen-Shannon divergence, per-image scores, and a
streaming quantile filter that drops the most uncertain images of an endless stream.

DatasetGAN scores a generated image by how much its interpreter ensemble disagrees:
per pixel the Jensen-Shannon divergence H(mean_m p_m) - mean_m H(p_m) of the M models'
class distributions p_m, per image the mean of the top 10 % pixel scores. The stream then
drops the most uncertain fraction of images. The original code averaged *logits* before
the softmax (its issue #27); here every model's softmax is taken first, then averaged.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .conventions import (
    IGNORE_INDEX,
    as_index,
    as_written,
    check_int,
    check_number,
    keyword_hints,
    short_list,
)

__all__ = [
    "StreamingQuantile",
    "class_mean_scores",
    "entropy",
    "image_scores",
    "js_divergence",
    "num_dropped",
]


#: The count's tolerance: a product ``drop_fraction * num`` less than this below an integer
#: counts as that integer (the export's rule since its first format; e.g. 0.9999999999 of
#: 1 drops 1).
_DROP_TOLERANCE = Fraction(1, 10**9)


def _drop_ratio(drop_fraction: float) -> tuple[int, int]:
    """``drop_fraction`` as the exact fraction p / q of the decimal it is written as
    (its shortest ``repr``: 0.7 -> 7 / 10, not the binary 0.69999999999999995559)."""
    ratio = Fraction(repr(float(drop_fraction)))
    return ratio.numerator, ratio.denominator


def _floor_drop(num: int, p: int, q: int) -> int:
    """``floor(num * p / q + 1e-9)`` in integers."""
    t = _DROP_TOLERANCE
    return (num * p * t.denominator + q * t.numerator) // (q * t.denominator)


def _floor_drop_counts(counts: torch.Tensor, most: int, p: int, q: int) -> torch.Tensor:
    """:func:`_floor_drop` of every count in ``counts`` (int64, each in [0, most]), on
    their device without a host sync when the products fit in int64 (any fraction of at
    most 9 decimals, e.g. 0.1 or 0.29); otherwise (e.g. 1 / 3 written with 16 digits)
    the counts are read to the host and counted there in Python integers."""
    t = _DROP_TOLERANCE
    # floor((m * p * D + q * N) / (q * D)) with the tolerance N / D, reduced by the gcd
    mul, add, div = p * t.denominator, q * t.numerator, q * t.denominator
    g = math.gcd(math.gcd(mul, add), div)
    mul, add, div = mul // g, add // g, div // g
    if most * mul + add < 2**63 and div < 2**63:
        return torch.div(counts * mul + add, div, rounding_mode="floor")
    exact = [_floor_drop(m, p, q) for m in counts.tolist()]
    return torch.tensor(exact, dtype=torch.int64, device=counts.device)


def num_dropped(num: int, drop_fraction: float) -> int:
    """How many of ``num`` scores a ``drop_fraction`` drops: ``floor(drop_fraction * num)``
    in exact integer arithmetic on the decimal ``drop_fraction`` is written as.

    Rounded down, so never more than the requested share is dropped, and exact: 0.7 of
    10 is 7 and 0.29 of 100 is 29 (binary floats give 6.999... and 28.999...). As the
    export always did, a product within 1e-9 below an integer counts as that integer
    (0.9999999999 of 1 is 1). The one rule of the export's selection and of
    :class:`StreamingQuantile`.
    """
    num = check_int(num, "num", 0)
    drop_fraction = check_number(as_written(drop_fraction), "drop_fraction", low=0.0, high=1.0)
    return _floor_drop(num, *_drop_ratio(drop_fraction))


def _check_dim(dim: Any, name: str, ndim: int) -> int:
    """``dim`` as a non-negative dim of an ``ndim``-dim input; a bool, a float, a string or
    a dim out of [-ndim, ndim) is a ValueError naming ``name`` (never wrapped around)."""
    d = as_index(dim)
    if d is None or not -ndim <= d < ndim:
        raise ValueError(
            f"{name}={dim!r:.40} is not a dim of a {ndim}-dim input "
            f"(an int in [{-ndim}, {ndim - 1}])"
        )
    return d % ndim


def _check_scores(value: Any, name: str) -> torch.Tensor:
    """``value`` when it is a tensor of real numbers (floating point or integer); a
    TypeError for anything else (a numpy array or a list raised AttributeError deep
    inside, a bool tensor passed as 0/1 scores, a complex one lost its imaginary part)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__:.40} "
            "(torch.as_tensor converts a numpy array)"
        )
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    return value


def entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy (nats) along ``dim``, in float32, with 0 log 0 = 0."""
    _check_scores(probs, "probs")
    dim = _check_dim(dim, "dim", probs.ndim)
    p = probs.float()
    return -torch.special.xlogy(p, p).sum(dim)


@keyword_hints
def js_divergence(
    probs: torch.Tensor,
    model_dim: int = 0,
    class_dim: int = 2,
    *,
    logits: bool = False,
) -> torch.Tensor:
    """Jensen-Shannon divergence of an ensemble: H(mean_m p_m) - mean_m H(p_m).

    ``probs``: class probabilities of every model, e.g. (M, B, K, H, W) with the default
    ``model_dim=0, class_dim=2``; the result drops both dims, e.g. (B, H, W). With
    ``logits=True`` the input holds logits and a softmax over ``class_dim`` is taken
    per model first (never average logits: that was DatasetGAN's bug). Computed in
    float32 whatever the input dtype (safe under autocast), 0 log 0 = 0, and clamped at
    0 so float rounding never gives a negative score. Dims are those of the input: one
    outside [-ndim, ndim), or no model or no class along them, is a ValueError; anything
    but a tensor of real numbers is a TypeError.
    """
    _check_scores(probs, "probs")
    if probs.ndim < 2:
        raise ValueError(f"js_divergence needs at least 2 dims (models, classes), got {probs.ndim}")
    model_dim = _check_dim(model_dim, "model_dim", probs.ndim)
    class_dim = _check_dim(class_dim, "class_dim", probs.ndim)
    if model_dim == class_dim:
        raise ValueError(f"model_dim and class_dim must differ, both are {model_dim}")
    for dim, what in ((model_dim, "model"), (class_dim, "class")):
        if probs.shape[dim] == 0:
            raise ValueError(
                f"js_divergence needs at least one {what} (input shape {tuple(probs.shape)}, "
                f"{what}_dim={dim})"
            )
    p = probs.float()
    if logits:
        p = torch.softmax(p, dim=class_dim)
    # Entropy removes class_dim; the model dim (kept with size 1) then sits at md.
    md = model_dim if model_dim < class_dim else model_dim - 1
    h_mean = entropy(p.mean(dim=model_dim, keepdim=True), dim=class_dim)
    mean_h = entropy(p, dim=class_dim).mean(dim=md, keepdim=True)
    return (h_mean - mean_h).clamp_min(0.0).squeeze(md)


def image_scores(
    pixel_uncertainty: torch.Tensor,
    top_fraction: float = 0.1,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per image the mean of its ``top_fraction`` highest pixel scores: (B, H, W) -> (B,).

    The number of pixels averaged is ``max(1, floor(top_fraction * n))`` with n the
    number of pixels considered, counted as :func:`num_dropped` counts: exactly, on the
    decimal ``top_fraction`` is written as (0.29 of 100 pixels is 29; binary floats gave
    28). DatasetGAN's image score averages its top 10 %; in Python ``[-n // 10:]`` would
    keep ceil(n / 10), one more for n = 4096. ``valid``
    (B, H, W) bool, optional: only those pixels count (e.g. not ignored ones); an image
    without any valid pixel scores 0.

    Non-finite scores of the pixels that count are never hidden: a NaN among them makes
    the image's score NaN (an inf one inf when it is among the top pixels), with or
    without ``valid``, so a broken prediction fails the stream's and the export's finite
    check (``NonFiniteOutputError``) instead of passing as a certain image. Pixels outside
    ``valid`` do not count, whatever their value. Zero pixels per image is a ValueError.
    """
    _check_scores(pixel_uncertainty, "pixel_uncertainty")
    if valid is not None and not isinstance(valid, torch.Tensor):
        raise TypeError(f"valid must be a bool torch.Tensor, got {type(valid).__name__:.40}")
    top_fraction = check_number(as_written(top_fraction), "top_fraction", low=0.0, high=1.0)
    if top_fraction == 0.0:
        raise ValueError("top_fraction must be in (0, 1], got 0.0")
    if pixel_uncertainty.ndim < 2:
        raise ValueError(
            "image_scores expects (B, ...) pixel scores, got shape "
            f"{tuple(pixel_uncertainty.shape)}"
        )
    u = pixel_uncertainty.float().flatten(1)
    n = u.shape[1]
    if n == 0:
        raise ValueError(
            "image_scores needs at least one pixel per image, got pixel scores of shape "
            f"{tuple(pixel_uncertainty.shape)}"
        )
    p, q = _drop_ratio(top_fraction)
    if valid is None:
        k = max(1, _floor_drop(n, p, q))
        return u.topk(k, dim=1).values.mean(dim=1)
    if valid.shape != pixel_uncertainty.shape:
        raise ValueError(
            f"valid has shape {tuple(valid.shape)}, pixel scores {tuple(pixel_uncertainty.shape)}"
        )
    v = valid.flatten(1).to(device=u.device, dtype=torch.bool)
    n_valid = v.sum(dim=1)
    k = _floor_drop_counts(n_valid, n, p, q).clamp_min(1)
    # Invalid pixels sort last (-inf); a valid NaN sorts first. The sum over the first k
    # <= n_valid entries holds valid pixels only, their NaN/inf included.
    ordered = torch.where(v, u, torch.full_like(u, -math.inf)).sort(dim=1, descending=True).values
    csum = ordered.cumsum(dim=1)
    top_sum = csum.gather(1, (k - 1).clamp_max(n - 1).unsqueeze(1)).squeeze(1)
    scores = top_sum / k.float()
    return torch.where(n_valid > 0, scores, torch.zeros_like(scores))


def class_mean_scores(
    pixel_uncertainty: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Per image the mean over its labeled classes of each class's mean pixel score.

    (B, H, W) scores and labels -> (B,). Every class present in an image counts once,
    however few pixels it has, so an image whose small parts are uncertain scores high
    even when its large regions are sure (the top-10 % score is dominated by the long
    boundaries of large regions). Pixels labeled ``ignore`` (255) do not count; any
    other label outside 0..num_classes-1 (negative, or a class the model does not have)
    is a ValueError, as are float labels and images without pixels.
    """
    _check_scores(pixel_uncertainty, "pixel_uncertainty")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__:.40}")
    num_classes = check_int(num_classes, "num_classes", 1)
    if pixel_uncertainty.shape != labels.shape or pixel_uncertainty.ndim != 3:
        raise ValueError(
            f"expected scores and labels (B, H, W) of one shape, got "
            f"{tuple(pixel_uncertainty.shape)} and {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if labels.shape[1] * labels.shape[2] == 0:
        raise ValueError(
            "class_mean_scores needs at least one pixel per image, got labels of shape "
            f"{tuple(labels.shape)}"
        )
    B = labels.shape[0]
    lab = labels.flatten(1).long()
    bad = ((lab < 0) | (lab >= num_classes)) & (lab != IGNORE_INDEX)
    if bool(bad.any()):
        values = torch.unique(lab[bad]).tolist()
        raise ValueError(
            f"labels must be class ids in 0..{num_classes - 1} or the ignore index "
            f"{IGNORE_INDEX}, got {short_list(values)} (num_classes={num_classes})"
        )
    lab = lab.clamp(max=num_classes)  # ignore -> K
    u = pixel_uncertainty.flatten(1).float()
    sums = torch.zeros(B, num_classes + 1, device=u.device).scatter_add_(1, lab, u)
    counts = torch.zeros(B, num_classes + 1, device=u.device).scatter_add_(
        1, lab, torch.ones_like(u)
    )
    sums, counts = sums[:, :num_classes], counts[:, :num_classes]
    present = counts > 0
    means = torch.where(present, sums / counts.clamp_min(1), torch.zeros_like(sums))
    return means.sum(1) / present.sum(1).clamp_min(1)


def _as_score(value: Any) -> float:
    """One image score as a float (NaN and inf pass: the filter drops them); a string, a
    bool or anything ``float`` refuses is a ValueError naming it."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"a score must be a number, got {value!r:.40}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a score must be a number, got {value!r:.40}") from None


@keyword_hints
class StreamingQuantile:
    """Decides, score by score, whether an image is among the most uncertain fraction.

    The threshold is the exact quantile of a sliding window of the most recent
    ``window`` scores (the current one included): of the n window scores the
    ``num_dropped(n, drop_fraction) = floor(drop_fraction * n)`` highest go (exact integer
    arithmetic, the export's rule), i.e. a score is dropped when at least
    ``n - floor(drop_fraction * n)`` of the n window scores are strictly smaller than it.
    For i.i.d. continuous scores this drops each image with probability
    ~``drop_fraction``; the window follows a slowly drifting distribution; no global
    sort, O(window) memory.

    Warm-up: before ``window`` scores have been seen, the same rule uses everything
    seen so far (the exact quantile of what has been seen), so nothing is dropped while
    ``floor(drop_fraction * n)`` is 0 (the first 9 scores at 0.1) and a fresh filter
    drops less than ``drop_fraction`` of its first scores: for i.i.d. scores the i-th is
    dropped with probability ``floor(drop_fraction * i) / i``.

    Ties are kept (a score equal to the threshold is not "more uncertain"), so a
    stream whose scores are mostly identical keeps more than ``1 - drop_fraction``.
    Non-finite scores (NaN, inf) are dropped and not recorded, so the window holds
    finite scores only. Fully deterministic; ``state_dict()`` holds the window, so a
    resumed filter makes exactly the same decisions.
    """

    def __init__(self, drop_fraction: float = 0.1, window: int = 4096) -> None:
        drop_fraction = check_number(as_written(drop_fraction), "drop_fraction", low=0.0, high=1.0)
        if drop_fraction == 1.0:
            raise ValueError("drop_fraction must be in [0, 1), got 1.0 (it would drop everything)")
        self.drop_fraction = drop_fraction
        self.window = check_int(window, "window", 1)
        self._ratio = _drop_ratio(drop_fraction)  # exact p / q for num_dropped
        self._recent: deque[float] = deque()  # arrival order, for eviction
        self._sorted: list[float] = []  # same values, sorted, for ranks
        self.seen = 0
        self.kept = 0

    def _num_dropped(self, n: int) -> int:
        """``num_dropped(n, drop_fraction)`` with the ratio parsed once."""
        return _floor_drop(n, *self._ratio)

    # ------------------------------------------------------------------ decisions
    def update(self, score: float) -> bool:
        """Record one score and return True to keep the image, False to drop it. A NaN
        score is dropped (a broken prediction is never kept); a string or a bool is a
        ValueError."""
        return self._decide(_as_score(score))

    def _decide(self, score: float) -> bool:
        """:meth:`update` of a score already checked by :func:`_as_score`."""
        self.seen += 1
        if not math.isfinite(score):
            return False
        if len(self._recent) == self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        n = len(self._sorted)
        below = bisect.bisect_left(self._sorted, score)
        keep = below < n - self._num_dropped(n)
        self.kept += int(keep)
        return keep

    def keep(self, scores: torch.Tensor | Sequence[float] | Iterable[float]) -> torch.Tensor:
        """Decide a batch in order (each decision sees the earlier ones): bool mask (B,).
        ``scores`` is one score per image: a tensor or array of more than one dim is a
        ValueError (it used to be flattened into as many decisions as it has values)."""
        if getattr(scores, "ndim", 1) > 1:
            raise ValueError(
                f"keep takes one score per image (B,), got shape {tuple(scores.shape)}"
            )
        if isinstance(scores, (str, bytes)):
            raise ValueError(f"scores must be numbers, one per image, got {scores!r:.40}")
        if isinstance(scores, torch.Tensor):
            values = _check_scores(scores, "scores").detach().float().flatten().cpu().tolist()
            device = scores.device
        else:  # every value checked before the first decision changes the window
            values = [_as_score(s) for s in scores]
            device = torch.device("cpu")
        return torch.tensor([self._decide(s) for s in values], dtype=torch.bool, device=device)

    def threshold(self) -> float:
        """The current (1 - drop_fraction) quantile of the window (NaN before any score):
        its ``n - num_dropped(n)``-th smallest score, the largest one a new score may
        equal and be kept."""
        if not self._sorted:
            return math.nan
        n = len(self._sorted)
        return self._sorted[max(0, n - self._num_dropped(n) - 1)]

    @property
    def kept_fraction(self) -> float:
        """Fraction of all scores seen so far that were kept (NaN before any)."""
        return self.kept / self.seen if self.seen else math.nan

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: settings, counters and the window (exact float values)."""
        return {
            "version": 1,
            "drop_fraction": self.drop_fraction,
            "window": self.window,
            "recent": list(self._recent),
            "seen": self.seen,
            "kept": self.kept,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state written by ``state_dict`` (settings included).

        Everything is checked before anything changes: settings as in the constructor,
        ``recent`` a list of at most ``min(window, seen)`` finite numbers, and
        ``0 <= kept <= seen``; anything else is a ValueError naming the field
        ("not a StreamingQuantile state: ...").
        """
        bad = "not a StreamingQuantile state"
        if not isinstance(state, Mapping):
            raise ValueError(f"{bad}: expected a dict, got {type(state).__name__}")
        missing = [
            k for k in ("drop_fraction", "window", "recent", "seen", "kept") if k not in state
        ]
        if missing:
            raise ValueError(f"{bad}: missing {short_list(missing)}")
        if state.get("version", 1) != 1:
            raise ValueError(f"{bad}: unknown version {state['version']!r:.40}")
        try:
            probe = StreamingQuantile(state["drop_fraction"], state["window"])
            seen = check_int(state["seen"], "seen", 0)
            kept = check_int(state["kept"], "kept", 0, seen)
        except ValueError as exc:
            raise ValueError(f"{bad}: {exc}") from None
        raw = state["recent"]
        if not isinstance(raw, (list, tuple)):
            raise ValueError(f"{bad}: recent must be a list of scores, got {type(raw).__name__}")
        recent = []
        for i, x in enumerate(raw):
            if isinstance(x, (bool, str, bytes)) or not isinstance(x, (int, float)):
                raise ValueError(f"{bad}: recent[{i}] must be a number, got {x!r:.40}")
            if not math.isfinite(x):
                raise ValueError(f"{bad}: recent[{i}] is {x!r} (the window holds finite scores)")
            recent.append(float(x))
        if len(recent) > min(probe.window, seen):
            raise ValueError(
                f"{bad}: it holds {len(recent)} scores, more than its window {probe.window} "
                f"or the {seen} scores it has seen"
            )
        self.drop_fraction, self.window, self._ratio = (
            probe.drop_fraction,
            probe.window,
            probe._ratio,
        )
        self._recent = deque(recent)
        self._sorted = sorted(recent)
        self.seen, self.kept = seen, kept

    def __repr__(self) -> str:
        return (
            f"StreamingQuantile(drop_fraction={self.drop_fraction}, window={self.window}, "
            f"seen={self.seen}, kept={self.kept})"
        )
