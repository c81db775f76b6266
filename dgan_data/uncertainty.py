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
from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = ["StreamingQuantile", "class_mean_scores", "entropy", "image_scores", "js_divergence"]


def entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """Shannon entropy (nats) along ``dim``, in float32, with 0 log 0 = 0."""
    p = probs.float()
    return -torch.special.xlogy(p, p).sum(dim)


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
    0 so float rounding never gives a negative score. Dims are those of the input.
    """
    if probs.ndim < 2:
        raise ValueError(f"js_divergence needs at least 2 dims (models, classes), got {probs.ndim}")
    model_dim = model_dim % probs.ndim
    class_dim = class_dim % probs.ndim
    if model_dim == class_dim:
        raise ValueError(f"model_dim and class_dim must differ, both are {model_dim}")
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
    number of pixels considered (as DatasetGAN's ``js.sort()[-n // 10:]``). ``valid``
    (B, H, W) bool, optional: only those pixels count (e.g. not ignored ones); an image
    without any valid pixel scores 0.
    """
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    if pixel_uncertainty.ndim < 2:
        raise ValueError(
            "image_scores expects (B, ...) pixel scores, got shape "
            f"{tuple(pixel_uncertainty.shape)}"
        )
    u = pixel_uncertainty.float().flatten(1)
    n = u.shape[1]
    if valid is None:
        k = max(1, int(top_fraction * n))
        return u.topk(k, dim=1).values.mean(dim=1)
    if valid.shape != pixel_uncertainty.shape:
        raise ValueError(
            f"valid has shape {tuple(valid.shape)}, pixel scores {tuple(pixel_uncertainty.shape)}"
        )
    v = valid.flatten(1).to(device=u.device, dtype=torch.bool)
    n_valid = v.sum(dim=1)
    k = (n_valid.double() * top_fraction).floor().long().clamp_min(1)
    ordered = torch.where(v, u, torch.full_like(u, -math.inf)).sort(dim=1, descending=True).values
    ordered = torch.where(torch.isfinite(ordered), ordered, torch.zeros_like(ordered))
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
    boundaries of large regions). Pixels labeled ``ignore`` (255) do not count.
    """
    if pixel_uncertainty.shape != labels.shape or pixel_uncertainty.ndim != 3:
        raise ValueError(
            f"expected scores and labels (B, H, W) of one shape, got "
            f"{tuple(pixel_uncertainty.shape)} and {tuple(labels.shape)}"
        )
    B = labels.shape[0]
    lab = labels.flatten(1).long().clamp(max=num_classes)  # ignore -> K
    u = pixel_uncertainty.flatten(1).float()
    sums = torch.zeros(B, num_classes + 1, device=u.device).scatter_add_(1, lab, u)
    counts = torch.zeros(B, num_classes + 1, device=u.device).scatter_add_(
        1, lab, torch.ones_like(u)
    )
    sums, counts = sums[:, :num_classes], counts[:, :num_classes]
    present = counts > 0
    means = torch.where(present, sums / counts.clamp_min(1), torch.zeros_like(sums))
    return means.sum(1) / present.sum(1).clamp_min(1)


class StreamingQuantile:
    """Decides, score by score, whether an image is among the most uncertain fraction.

    The threshold is the exact quantile of a sliding window of the most recent
    ``window`` scores (the current one included): a score is dropped when at least
    ``ceil((1 - drop_fraction) * n)`` of the n window scores are strictly smaller than
    it, i.e. when it ranks in the top ``drop_fraction`` of the window. For i.i.d.
    continuous scores this drops each image with probability ~``drop_fraction``; the
    window follows a slowly drifting distribution; no global sort, O(window) memory.

    Warm-up: before ``window`` scores have been seen, the same rule uses everything
    seen so far (the exact quantile of what has been seen), so the first score is
    always kept and the early decisions are coarse but unbiased to within 1/n.

    Ties are kept (a score equal to the threshold is not "more uncertain"), so a
    stream whose scores are mostly identical keeps more than ``1 - drop_fraction``.
    NaN scores are dropped and not recorded. Fully deterministic; ``state_dict()``
    holds the window, so a resumed filter makes exactly the same decisions.
    """

    def __init__(self, drop_fraction: float = 0.1, window: int = 4096) -> None:
        if not 0.0 <= drop_fraction < 1.0:
            raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.drop_fraction = float(drop_fraction)
        self.window = int(window)
        self._recent: deque[float] = deque()  # arrival order, for eviction
        self._sorted: list[float] = []  # same values, sorted, for ranks
        self.seen = 0
        self.kept = 0

    # ------------------------------------------------------------------ decisions
    def update(self, score: float) -> bool:
        """Record one score and return True to keep the image, False to drop it."""
        score = float(score)
        self.seen += 1
        if math.isnan(score):
            return False
        if len(self._recent) == self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        n = len(self._sorted)
        below = bisect.bisect_left(self._sorted, score)
        keep = self.drop_fraction == 0.0 or below < math.ceil((1.0 - self.drop_fraction) * n)
        self.kept += int(keep)
        return keep

    def keep(self, scores: torch.Tensor | Sequence[float] | Iterable[float]) -> torch.Tensor:
        """Decide a batch in order (each decision sees the earlier ones): bool mask (B,)."""
        if isinstance(scores, torch.Tensor):
            values = scores.detach().float().flatten().cpu().tolist()
            device = scores.device
        else:
            values = [float(s) for s in scores]
            device = torch.device("cpu")
        return torch.tensor([self.update(s) for s in values], dtype=torch.bool, device=device)

    def threshold(self) -> float:
        """The current (1 - drop_fraction) quantile of the window (NaN before any score)."""
        if not self._sorted:
            return math.nan
        n = len(self._sorted)
        idx = min(n - 1, max(0, math.ceil((1.0 - self.drop_fraction) * n) - 1))
        return self._sorted[idx]

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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by ``state_dict`` (settings included)."""
        try:
            drop_fraction = float(state["drop_fraction"])
            window = int(state["window"])
            recent = [float(x) for x in state["recent"]]
            seen, kept = int(state["seen"]), int(state["kept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a StreamingQuantile state: {exc!r}") from exc
        if len(recent) > window:
            raise ValueError(f"state holds {len(recent)} scores, more than its window {window}")
        self.__init__(drop_fraction, window)
        self._recent = deque(recent)
        self._sorted = sorted(recent)
        self.seen, self.kept = seen, kept

    def __repr__(self) -> str:
        return (
            f"StreamingQuantile(drop_fraction={self.drop_fraction}, window={self.window}, "
            f"seen={self.seen}, kept={self.kept})"
        )
