"""Confusion matrices and the scores computed from them (IoU, mIoU, AUROC).

Everything here starts from a confusion matrix ``C`` of shape (K, K), int64, with
**rows = ground truth, columns = prediction**: ``C[t, p]`` counts the pixels of class
``t`` predicted as ``p``. From it, for class k:

- IoU_k = C[k, k] / (sum_p C[k, p] + sum_t C[t, k] - C[k, k]); NaN when the class is
  absent from both target and prediction (0 / 0). A class that is predicted but absent
  from the target has IoU 0.
- mIoU = mean of IoU_k over the classes kept (``exclude`` drops class ids, e.g. a
  background class), ignoring NaN. ``absent="zero"`` counts absent classes as 0
  instead, as the DatasetGAN release code did (``intersection / (1e-8 + union)``).
- mIoU is dataset-level: the matrix is summed over all images first, then IoU per
  class, then the mean over classes (as in the paper and the release code), not a
  mean of per-image IoUs.

Pixels whose target is ``ignore_index`` are not counted at all (whatever is predicted
there). Target values outside ``[0, K)`` other than ``ignore_index``, and predictions
outside ``[0, K)`` at counted pixels, raise ``ValueError``: a model cannot predict
"ignore", and silently dropping such pixels (as smp's ``get_stats`` does) would
inflate the scores.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..conventions import (
    IGNORE_INDEX,
    as_index,
    check_bool,
    check_device,
    keyword_hints,
    short_list,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ConfusionMatrix",
    "auroc",
    "confusion_matrix",
    "metrics_from_confusion",
    "per_image_confusion",
]

_ABSENT_MODES = ("nan", "zero")

#: A checkpoint's confusion matrices: an array (N, K, K) of per-image matrices, or a
#: callable that takes image indices (1-D int array) and returns their summed (K, K).
ConfusionSource = np.ndarray | torch.Tensor | Callable[[np.ndarray], Any]


# ---------------------------------------------------------------- detection


def auroc(scores: Any, positive: Any) -> float:
    """Probability that a random positive scores above a random negative, ties counting
    half (the Mann-Whitney statistic, from mean ranks: O(n log n), fit for millions of
    pixels). NaN when either side is empty.

    ``scores``: finite numbers; ``positive``: one label per score, bool or 0/1. NaN or
    inf scores (NaN would rank above every real score), other labels (1/2 would all
    read as positive) and a length mismatch are a ValueError.
    """
    try:
        scores = np.asarray(scores, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError("auroc: scores must be numbers") from None
    labels = np.asarray(positive).ravel()
    if scores.size != labels.size:
        raise ValueError(
            f"auroc: {scores.size} scores but {labels.size} labels (positive): one label per score"
        )
    finite = np.isfinite(scores)
    if not finite.all():
        raise ValueError(
            f"auroc: scores must be finite, found NaN or inf in {int((~finite).sum())} of "
            f"{scores.size} (NaN would rank above every real score)"
        )
    if labels.dtype != bool:
        if not np.issubdtype(labels.dtype, np.number) or np.iscomplexobj(labels):
            raise ValueError(
                f"auroc: positive must be bool or 0/1 labels, got dtype {labels.dtype}"
            )
        odd = np.unique(labels[(labels != 0) & (labels != 1)])
        if odd.size:
            raise ValueError(
                f"auroc: positive must be bool or 0/1 labels, found {short_list(odd.tolist())}"
            )
    positive = labels.astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # 1-based rank of each tie group's last member
    ranks = (last - (counts - 1) / 2)[inverse]  # mean rank of the group
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------- pixel counting
def _check_ignore_index(ignore_index: int | None, num_classes: int) -> int:
    """``num_classes`` as an int >= 1 (numpy and tensor ints too; a bool, 2.0 or "2" is a
    ValueError), after checking that ``ignore_index`` is None or an int outside the
    class ids; returns ``num_classes``."""
    k = as_index(num_classes)
    if k is None:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if k < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    num_classes = k
    if ignore_index is not None and as_index(ignore_index) is None:
        raise ValueError(f"ignore_index must be None or an int, got {ignore_index!r}")
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index={ignore_index} is a class id (K = {num_classes} classes: "
            f"0..{num_classes - 1}). Map the pixels to ignore to {IGNORE_INDEX} in the "
            "targets, or keep the class and leave it out of the mean with exclude=[...]"
        )
    return num_classes


def _class_ids(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate ``pred``/``target``; return (pred ids, target ids, counted-pixel mask).

    ``pred`` may be class ids (B, H, W) or logits/probabilities (B, K, H, W) (argmax).
    One host sync checks all values at once.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"pred and target must be torch tensors, got {type(pred).__name__} and "
            f"{type(target).__name__}"
        )
    if target.ndim != 3:
        if target.ndim == 2:
            hint = " (one mask? add a batch dimension with mask[None])"
        elif target.ndim == 4 and target.shape[1] == 1:
            hint = " (a channel dimension? drop it with mask[:, 0])"
        else:
            hint = ""
        raise ValueError(
            f"target must be (B, H, W) class ids, got shape {tuple(target.shape)}{hint}"
        )
    if target.is_floating_point() or target.is_complex():
        raise ValueError(f"target must hold integer class ids, got dtype {target.dtype}")
    logits = None
    if pred.ndim == 4:
        if not pred.is_floating_point():
            raise ValueError(
                f"a 4-D pred is read as logits (B, K, H, W) and must be floating, got {pred.dtype}"
            )
        if pred.shape[1] != num_classes:
            raise ValueError(
                f"logits have {pred.shape[1]} channels, expected num_classes = {num_classes}"
            )
        logits = pred
        pred = pred.argmax(dim=1)  # argmax takes a NaN as the largest: checked below
    elif pred.is_floating_point() or pred.is_complex():
        raise ValueError(
            f"pred of shape {tuple(pred.shape)} and dtype {pred.dtype}: pass integer class "
            "ids (B, H, W) or floating logits (B, K, H, W)"
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape "
            "(resize the prediction to the mask size first)"
        )
    pred = pred.to(device=target.device, dtype=torch.int64)
    target = target.to(torch.int64)

    in_range_t = (target >= 0) & (target < num_classes)
    if ignore_index is None:
        counted = torch.ones_like(target, dtype=torch.bool)
    else:
        counted = target != ignore_index
    bad_t = counted & ~in_range_t
    bad_p = counted & ((pred < 0) | (pred >= num_classes))
    bad_l = (
        counted & logits.isnan().any(dim=1).to(target.device)
        if logits is not None
        else torch.zeros_like(counted)
    )
    n_bad_t, n_bad_p, n_bad_l = (
        int(v) for v in torch.stack([bad_t.sum(), bad_p.sum(), bad_l.sum()]).tolist()
    )
    if n_bad_l:
        raise ValueError(
            f"pred (logits) holds NaN at {n_bad_l} counted pixels: a diverged or broken "
            "model; NaN would be scored as the class argmax picks"
        )
    if n_bad_t:
        found = torch.unique(target[bad_t]).tolist()
        allowed = f"0..{num_classes - 1}" + (
            "" if ignore_index is None else f" or {ignore_index} (ignore)"
        )
        raise ValueError(
            f"target has {n_bad_t} pixels with class ids {short_list(found)} outside {allowed}"
        )
    if n_bad_p:
        found = torch.unique(pred[bad_p]).tolist()
        raise ValueError(
            f"pred has {n_bad_p} counted pixels with class ids {short_list(found)} outside "
            f"0..{num_classes - 1}; predictions cannot be 'ignore' (only targets can)"
        )
    return pred, target, counted


def per_image_confusion(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
) -> torch.Tensor:
    """One confusion matrix per image: (B, K, K) int64 on the target's device.

    ``pred`` is (B, H, W) class ids or (B, K, H, W) logits; ``target`` (B, H, W).
    This is the input :func:`five_fold_protocol` wants (stack over the test set).
    """
    num_classes = _check_ignore_index(ignore_index, num_classes)
    pred, target, counted = _class_ids(pred, target, num_classes, ignore_index)
    K = num_classes
    B = target.shape[0]
    batch = torch.arange(B, device=target.device).view(B, 1, 1).expand_as(target)
    index = (batch * K + target) * K + pred
    counts = torch.bincount(index[counted], minlength=B * K * K)
    return counts.view(B, K, K)


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
) -> torch.Tensor:
    """The (K, K) int64 confusion matrix (rows = target, cols = prediction) of a batch."""
    num_classes = _check_ignore_index(ignore_index, num_classes)
    pred, target, counted = _class_ids(pred, target, num_classes, ignore_index)
    K = num_classes
    counts = torch.bincount((target * K + pred)[counted], minlength=K * K)
    return counts.view(K, K)


# ---------------------------------------------------------------- scores
def _as_numpy_confusion(conf: Any, name: str = "confusion") -> np.ndarray:
    """A (..., K, K) matrix of pixel counts as an int64 numpy array; a shape that is not
    square, K = 0, or entries that are NaN, inf, negative or fractional are a ValueError."""
    if isinstance(conf, ConfusionMatrix):
        raise ValueError(
            f"{name}: got a ConfusionMatrix object; give its counts: .matrix (K, K), or "
            ".per_image() (N, K, K) of one built with keep_per_image=True"
        )
    given = conf
    if isinstance(conf, torch.Tensor):
        conf = conf.detach().cpu().numpy()
    try:
        arr = np.asarray(conf)
    except ValueError:  # ragged nested lists
        raise ValueError(
            f"{name}: expected (..., K, K) confusion matrices, got rows of different lengths"
        ) from None
    if arr.ndim == 0:  # a number, None, a string, a dict: "got shape ()" said nothing
        raise ValueError(
            f"{name}: expected (..., K, K) confusion matrices of pixel counts, got "
            f"{type(given).__name__} {given!r:.40} (a score is not a confusion matrix)"
        )
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(
            f"{name}: expected square (..., K, K) confusion matrices (rows = target, "
            f"columns = prediction), got shape {arr.shape}"
        )
    if arr.shape[-1] == 0:
        raise ValueError(
            f"{name}: a confusion matrix needs at least one class, got shape {arr.shape}"
        )
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValueError(
                f"{name}: pixel counts must be finite, found NaN or inf in "
                f"{int((~finite).sum())} of {arr.size} entries"
            )
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: confusion matrices hold pixel counts, found fractions")
        if arr.size and arr.max() >= 2.0**63:
            raise ValueError(f"{name}: pixel counts of {arr.max():g} do not fit int64")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: confusion matrices hold pixel counts, got {arr.dtype}")
    elif (
        np.issubdtype(arr.dtype, np.unsignedinteger)
        and arr.size
        and arr.max() > np.iinfo(np.int64).max  # the int64 cast would wrap them negative
    ):
        raise ValueError(f"{name}: pixel counts of {arr.max()} do not fit int64")
    if arr.size and arr.min() < 0:
        raise ValueError(
            f"{name}: pixel counts cannot be negative, found {int((arr < 0).sum())} of "
            f"{arr.size} entries below 0 (smallest {arr.min():g})"
        )
    return arr.astype(np.int64, copy=False)


def _check_exclude(exclude: Iterable[int], num_classes: int) -> tuple[int, ...]:
    """``exclude`` as sorted unique class ids; a float or bool is refused, never truncated."""
    values = list(exclude)
    not_ids = [v for v in values if as_index(v) is None]
    if not_ids:
        raise ValueError(f"exclude: class ids must be ints, got {short_list(not_ids)}")
    ids = tuple(sorted({as_index(c) for c in values}))  # type: ignore[type-var]
    bad = [c for c in ids if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"exclude: class ids {bad} outside 0..{num_classes - 1}")
    if len(ids) == num_classes:
        raise ValueError("exclude removes every class: nothing left to average")
    return ids


def _iou_np(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU (..., K) float64 from (..., K, K); NaN where the union is empty."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1).astype(np.float64)
    union = conf.sum(-1) + conf.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def _miou_np(iou: np.ndarray, exclude: tuple[int, ...], absent: str) -> np.ndarray:
    """mIoU over the last axis, classes in ``exclude`` left out; NaN if nothing to average."""
    if absent not in _ABSENT_MODES:
        raise ValueError(f"absent must be one of {_ABSENT_MODES}, got {absent!r}")
    keep = np.ones(iou.shape[-1], dtype=bool)
    keep[list(exclude)] = False
    vals = iou[..., keep]
    if absent == "zero":
        return np.nan_to_num(vals, nan=0.0).mean(-1)
    n = (~np.isnan(vals)).sum(-1)
    total = np.nansum(vals, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def metrics_from_confusion(
    confusion: Any, exclude: Iterable[int] = (), absent: str = "nan"
) -> dict[str, Any]:
    """All scores of one (K, K) confusion matrix (or (N, K, K), summed over N).

    Returns a dict: ``iou`` (K,) float64 tensor (NaN for classes absent from both
    target and prediction), ``miou`` float (mean over the classes not in ``exclude``,
    NaN ignored unless ``absent="zero"``), ``pixel_accuracy`` float,
    ``per_class_accuracy`` (K,) (recall; NaN where the class has no target pixel),
    ``mean_accuracy`` float, ``support`` (K,) int64 (target pixels per class),
    ``num_pixels`` int, ``confusion`` (K, K) int64, ``exclude`` tuple of class ids,
    ``absent`` the convention used. A matrix that is not square (K, K), or holds NaN,
    inf, negative or fractional counts, is a ValueError.
    """
    conf = _as_numpy_confusion(confusion)
    if conf.ndim > 2:
        conf = conf.reshape(-1, *conf.shape[-2:]).sum(0)
    K = conf.shape[0]
    ex = _check_exclude(exclude, K)
    iou = _iou_np(conf)
    tp = np.diagonal(conf).astype(np.float64)
    support = conf.sum(1)
    total = int(conf.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    keep = np.ones(K, dtype=bool)
    keep[list(ex)] = False
    kept_acc = acc[keep]
    mean_acc = float(np.nanmean(kept_acc)) if np.any(~np.isnan(kept_acc)) else math.nan
    return {
        "iou": torch.from_numpy(iou),
        "miou": float(_miou_np(iou, ex, absent)),
        "pixel_accuracy": float(tp.sum() / total) if total else math.nan,
        "per_class_accuracy": torch.from_numpy(acc),
        "mean_accuracy": mean_acc,
        "support": torch.from_numpy(support.astype(np.int64)),
        "num_pixels": total,
        "confusion": torch.from_numpy(conf.copy()),
        "exclude": ex,
        "absent": absent,
    }


# ---------------------------------------------------------------- accumulator
@keyword_hints
class ConfusionMatrix:
    """Accumulates a (K, K) int64 confusion matrix over batches, on the device.

    ``update(pred, target)`` takes class ids (B, H, W) or logits (B, K, H, W) and
    targets (B, H, W); pixels whose target is ``ignore_index`` are skipped, other
    out-of-range values raise ``ValueError`` (see the module docstring).

    ``device=None`` keeps the matrix on the device of the data it is given (it moves
    there on the first ``update``); a given ``device`` moves inputs there instead.
    ``keep_per_image=True`` also keeps one matrix per image (in update order), for
    :func:`five_fold_protocol`. In DDP, call :meth:`all_reduce` once on every rank
    after the last update (per-image matrices stay local to each rank).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = IGNORE_INDEX,
        device: torch.device | str | None = None,
        keep_per_image: bool = False,
    ) -> None:
        num_classes = _check_ignore_index(ignore_index, num_classes)
        self.num_classes = num_classes
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self._fixed_device = check_device(device)
        self.keep_per_image = check_bool(keep_per_image, "keep_per_image")
        self.matrix = torch.zeros(
            num_classes, num_classes, dtype=torch.int64, device=self._fixed_device or "cpu"
        )
        self._per_image: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def reset(self) -> None:
        """Zero the counts (and drop per-image matrices); the device stays."""
        self.matrix.zero_()
        self._per_image = []

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch: ``pred`` (B, H, W) ids or (B, K, H, W) logits, ``target`` (B, H, W)."""
        if self._fixed_device is not None:
            pred, target = pred.to(self._fixed_device), target.to(self._fixed_device)
        elif target.device != self.matrix.device:
            self.matrix = self.matrix.to(target.device)
            self._per_image = [m.to(target.device) for m in self._per_image]
        K, ignore = self.num_classes, self.ignore_index
        if self.keep_per_image:
            per_image = per_image_confusion(pred, target, K, ignore)
            self._per_image.append(per_image)
            self.matrix += per_image.sum(0)
        else:
            self.matrix += confusion_matrix(pred, target, K, ignore)

    def per_image(self) -> torch.Tensor:
        """(N, K, K) int64 on the CPU, one matrix per image seen (needs ``keep_per_image``)."""
        if not self.keep_per_image:
            raise RuntimeError("per_image() needs ConfusionMatrix(..., keep_per_image=True)")
        K = self.num_classes
        if not self._per_image:
            return torch.zeros(0, K, K, dtype=torch.int64)
        return torch.cat([m.cpu() for m in self._per_image])

    def compute(self, exclude: Iterable[int] = (), absent: str = "nan") -> dict[str, Any]:
        """Scores of the counts so far; see :func:`metrics_from_confusion` for the keys."""
        return metrics_from_confusion(self.matrix, exclude=exclude, absent=absent)

    def _check_compatible(self, other: ConfusionMatrix) -> None:
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge ConfusionMatrix(num_classes={other.num_classes}, "
                f"ignore_index={other.ignore_index}) into one with num_classes="
                f"{self.num_classes}, ignore_index={self.ignore_index}"
            )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts (and per-image matrices, appended) to this one; returns self.

        Everything is checked first, so a refused merge leaves this matrix as it was.
        Merging a matrix into itself is refused (it would double the counts: in
        ``total = parts[0]; for p in parts: total.merge(p)``, start from ``parts[1:]``).
        """
        if not isinstance(other, ConfusionMatrix):
            raise ValueError(f"merge: expected a ConfusionMatrix, got {type(other).__name__}")
        if other is self:
            raise ValueError(
                "merge: cannot merge a ConfusionMatrix into itself (it would count every "
                "pixel twice)"
            )
        self._check_compatible(other)
        if self.keep_per_image and not other.keep_per_image:
            raise ValueError("merge: this matrix keeps per-image matrices, the other does not")
        added = other.matrix.to(self.matrix.device)
        per_image = (
            [m.to(self.matrix.device) for m in other._per_image] if self.keep_per_image else []
        )
        self.matrix += added
        self._per_image.extend(per_image)
        return self

    def all_reduce(self, group: Any = None) -> ConfusionMatrix:
        """Sum the counts over all ranks with ``torch.distributed`` (no-op when not initialised).

        Call it once, on every rank, after the last update: calling it again would add
        the already-summed counts again. Returns self.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return self
        t = self.matrix
        if dist.get_backend(group) == "nccl" and t.device.type != "cuda":
            t = t.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        self.matrix = t.to(self.matrix.device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Counts and settings (CPU tensors), e.g. to resume a long evaluation."""
        state: dict[str, Any] = {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "confusion": self.matrix.cpu().clone(),
        }
        if self.keep_per_image:
            state["per_image"] = self.per_image()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore counts saved by :meth:`state_dict`; settings must match.

        The counts must be a (K, K) matrix of non-negative whole numbers; a matrix that
        keeps per-image matrices needs the state's ``per_image`` (N, K, K), whose sum is
        the counts (or less, after :meth:`all_reduce` added other ranks' pixels to the
        counts). Anything else is a ValueError, and the matrix is left as it was.
        """
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        missing = [k for k in ("num_classes", "ignore_index", "confusion") if k not in state]
        if missing:
            raise ValueError(f"state lacks {', '.join(missing)}: not a ConfusionMatrix state")
        if (state["num_classes"], state["ignore_index"]) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"state is for num_classes={state['num_classes']}, ignore_index="
                f"{state['ignore_index']}; this matrix has num_classes={self.num_classes}, "
                f"ignore_index={self.ignore_index}"
            )
        K = self.num_classes
        conf = _as_numpy_confusion(state["confusion"], "state['confusion']")
        if conf.shape != (K, K):
            raise ValueError(
                f"state['confusion'] has shape {conf.shape}, expected a ({K}, {K}) matrix"
            )
        per_image: list[torch.Tensor] = []
        if self.keep_per_image:
            if state.get("per_image") is None:
                raise ValueError(
                    "state holds no per_image matrices, but this matrix keeps them "
                    "(keep_per_image=True): load it into ConfusionMatrix(..., keep_per_image=False)"
                )
            mats = _as_numpy_confusion(state["per_image"], "state['per_image']")
            if mats.ndim != 3 or mats.shape[1:] != (K, K):
                raise ValueError(
                    f"state['per_image'] has shape {mats.shape}, expected (N, {K}, {K})"
                )
            if np.any(mats.sum(0) > conf):
                raise ValueError(
                    "state['per_image'] counts more pixels than state['confusion']: the two "
                    "do not belong together"
                )
            if len(mats):
                per_image = [torch.from_numpy(mats.copy()).to(self.matrix.device)]
        self.matrix = torch.from_numpy(conf.copy()).to(self.matrix.device)
        self._per_image = per_image

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self.matrix.sum())}, device={self.device})"
        )
