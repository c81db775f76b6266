"""The DatasetGAN evaluation protocols: choosing a checkpoint, reporting its mIoU.

The protocols (section 4 of the paper) choose a checkpoint of the downstream model
and report its test mIoU:

- :func:`five_fold_protocol`: the test set is split into folds; for each fold the
  checkpoint with the best mIoU on that fold is chosen and its mIoU on the other folds
  is reported; mean and std over folds.
- :func:`holdout_protocol`: the checkpoint is chosen by a validation score computed
  by the caller (e.g. on held-out training data), then scored on the whole test set.

Both take per-checkpoint confusion matrices, so a model is run once per checkpoint
and image; all the fold arithmetic is sums of small (K, K) matrices.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..conventions import as_index, check_int, is_bool, keyword_hints, short_list
from ..seeds import check_seed, splitmix64
from .confusion import (
    ConfusionSource,
    _as_numpy_confusion,
    _check_exclude,
    _iou_np,
    _miou_np,
    metrics_from_confusion,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CrossValidationResult",
    "HoldoutResult",
    "cross_validation_folds",
    "five_fold_protocol",
    "holdout_protocol",
]


# ---------------------------------------------------------------- folds
def cross_validation_folds(
    num_items: int, num_folds: int = 5, seed: int | None = 0
) -> list[np.ndarray]:
    """Split item indices 0..num_items-1 into ``num_folds`` disjoint folds covering them all.

    Fold sizes differ by at most one (the first ``num_items % num_folds`` folds get the
    extra item); indices are sorted within each fold. The order is shuffled by a
    SplitMix64 hash of (seed, index), so the same seed gives the same folds on every
    machine and numpy version. ``seed=None`` keeps the item order (contiguous folds),
    like the DatasetGAN release, which sliced the sorted file list (it left the
    ``num_items % 5`` last items out of every validation fold; pass explicit ``folds``
    to :func:`five_fold_protocol` to reproduce that exactly). ``num_items``, ``num_folds``
    and ``seed`` (in [0, 2**63)) must be ints: a float or bool is a ValueError.
    """
    num_items = check_int(num_items, "num_items", 1)
    num_folds = check_int(num_folds, "num_folds", 2)
    seed = None if seed is None else check_seed(seed)
    if num_items < num_folds:
        raise ValueError(f"cannot split {num_items} items into {num_folds} non-empty folds")
    if seed is None:
        order = np.arange(num_items)
    else:
        key = splitmix64(np.array([seed], dtype=np.uint64))[0]
        with np.errstate(over="ignore"):
            hashes = splitmix64(np.arange(num_items, dtype=np.uint64) + key)
        order = np.argsort(hashes, kind="stable")
    return [np.sort(f).astype(np.int64) for f in np.array_split(order, num_folds)]


# ---------------------------------------------------------------- protocols
@dataclass(frozen=True)
class CrossValidationResult:
    """Outcome of :func:`five_fold_protocol`.

    ``fold_miou[f]`` is the mIoU, on all images outside fold f, of the checkpoint
    ``chosen[f]`` that scored best on fold f (``selection_miou[f]``). ``mean``/``std``
    are over ``fold_miou`` (``std`` with ``ddof``). ``per_class_iou`` (F, K) belongs to
    the chosen checkpoints on their test parts; ``selection_table`` (C, F) is every
    checkpoint's mIoU on every fold, rows in the order of ``checkpoints``.
    """

    mean: float
    std: float
    fold_miou: list[float]
    chosen: list[Any]
    selection_miou: list[float]
    folds: list[np.ndarray] = field(repr=False)
    per_class_iou: np.ndarray = field(repr=False)
    checkpoints: list[Any] = field(repr=False)
    selection_table: np.ndarray = field(repr=False)
    exclude: tuple[int, ...] = ()
    ddof: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (checkpoints as given, arrays as lists)."""
        return {
            "mean": self.mean,
            "std": self.std,
            "fold_miou": list(self.fold_miou),
            "chosen": list(self.chosen),
            "selection_miou": list(self.selection_miou),
            "folds": [f.tolist() for f in self.folds],
            "per_class_iou": self.per_class_iou.tolist(),
            "exclude": list(self.exclude),
            "ddof": self.ddof,
        }


@dataclass(frozen=True)
class HoldoutResult:
    """Outcome of :func:`holdout_protocol`: the chosen checkpoint and its test scores.

    ``val_is_miou``: the chosen checkpoint's ``val_score`` is the mIoU of a validation
    confusion matrix (a fraction); else it is the caller's own score, of unknown scale.
    """

    checkpoint: Any
    val_score: float
    test: dict[str, Any] = field(repr=False)
    val_scores: dict[Any, float] = field(default_factory=dict, repr=False)
    val_is_miou: bool = False

    @property
    def miou(self) -> float:
        return float(self.test["miou"])


def _fold_indices(fold: Any, i: int) -> np.ndarray:
    """Fold ``i`` as a flat int64 array of image indices; floats and bools are refused
    (never truncated), a bool mask with a hint."""
    arr = np.asarray(fold.detach().cpu() if isinstance(fold, torch.Tensor) else fold)
    if arr.size == 0:
        raise ValueError(f"fold {i} is empty")
    if arr.dtype == bool:
        raise ValueError(
            f"fold {i} is a bool mask: give image indices (np.flatnonzero(mask) makes them)"
        )
    if np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.unsignedinteger) and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"fold {i} has indices outside the int64 range")
        return arr.astype(np.int64).reshape(-1)
    values = arr.reshape(-1).tolist()
    bad = [v for v in values if as_index(v) is None]
    if bad:
        raise ValueError(f"fold {i}: image indices must be ints, got {short_list(bad)}")
    return np.array([as_index(v) for v in values], dtype=np.int64)


def _check_folds(folds: Sequence[Any], num_items: int) -> list[np.ndarray]:
    out = [_fold_indices(f, i) for i, f in enumerate(folds)]
    if len(out) < 2:
        raise ValueError(f"need at least 2 folds, got {len(out)}")
    for i, f in enumerate(out):
        if f.min() < 0 or f.max() >= num_items:
            raise ValueError(f"fold {i} has indices outside 0..{num_items - 1}")
    flat = np.concatenate(out)
    if np.unique(flat).size != flat.size:
        raise ValueError("folds overlap: an image index appears in more than one fold")
    return out


def _best(scores: Sequence[float]) -> int:
    """Index of the highest score, the first one on ties; NaN never wins."""
    best, best_i = -math.inf, -1
    for i, s in enumerate(scores):
        if not math.isnan(s) and s > best:
            best, best_i = s, i
    return best_i


def _fold_sums(
    name: Any, source: ConfusionSource, folds: list[np.ndarray], num_items: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(F, K, K) per-fold sums, the (K, K) sum over all items, and the item count."""
    if callable(source):
        if num_items is None:
            raise ValueError(f"checkpoint {name!r}: a callable source needs num_items")

        shape: list[tuple[int, ...]] = []  # the first fold's (K, K)

        def call(idx: np.ndarray, what: str) -> np.ndarray:
            conf = _as_numpy_confusion(source(idx), what)
            conf = conf.reshape(-1, *conf.shape[-2:]).sum(0) if conf.ndim > 2 else conf
            if shape and conf.shape != shape[0]:
                raise ValueError(f"{what}: {conf.shape} matrix, expected {shape[0]}")
            shape.append(conf.shape)
            return conf

        sums = np.stack([call(f, f"checkpoint {name!r}, fold {i}") for i, f in enumerate(folds)])
        if sum(f.size for f in folds) == num_items:
            total = sums.sum(0)
        else:
            total = call(np.arange(num_items), f"checkpoint {name!r}, all images")
        return sums, total, num_items
    arr = _as_numpy_confusion(source, f"checkpoint {name!r}")
    if arr.ndim != 3:
        raise ValueError(
            f"checkpoint {name!r}: expected per-image confusion matrices (N, K, K), "
            f"got shape {arr.shape}"
        )
    if num_items is not None and arr.shape[0] != num_items:
        raise ValueError(f"checkpoint {name!r}: {arr.shape[0]} images, expected {num_items}")
    n = arr.shape[0]
    if any(f.max() >= n for f in folds):
        raise ValueError(f"checkpoint {name!r}: folds index past its {n} images")
    sums = np.stack([arr[f].sum(0) for f in folds])
    return sums, arr.sum(0), n


@keyword_hints
def five_fold_protocol(
    confusions: Mapping[Any, ConfusionSource],
    *,
    num_items: int | None = None,
    num_folds: int = 5,
    seed: int | None = 0,
    folds: Sequence[Any] | None = None,
    exclude: Iterable[int] = (),
    absent: str = "nan",
    ddof: int = 0,
) -> CrossValidationResult:
    """The paper's k-fold cross-validation over a small labeled test set.

    ``confusions`` maps each checkpoint (e.g. a training step) to its per-image
    confusion matrices (N, K, K) (see :func:`per_image_confusion`,
    ``ConfusionMatrix(keep_per_image=True).per_image()``), or to a callable that
    takes an index array and returns the summed (K, K) matrix of those images (it is
    called once per fold). For each fold f: the checkpoint with the highest mIoU on
    fold f is chosen (ties: the first in the mapping's order, so list checkpoints
    in training order; NaN never wins) and scored on every image outside fold f
    (the confusion summed over them, then mIoU). Returns the mean and std
    (``ddof=0``, as ``np.std`` in the DatasetGAN release; an int below the number of
    folds) of those scores over folds.

    Folds: ``folds`` if given (disjoint index arrays, they need not cover every
    image; the test part of fold f is always all images not in fold f), else
    ``cross_validation_folds(N, num_folds, seed)``. Cost: one pass over the (N, K, K)
    array per checkpoint; everything else is (K, K) arithmetic.
    """
    if not confusions:
        raise ValueError("confusions is empty: give at least one checkpoint")
    num_folds = check_int(num_folds, "num_folds", 2)
    seed = None if seed is None else check_seed(seed)
    ddof = check_int(ddof, "ddof", 0)
    if num_items is not None:
        num_items = check_int(num_items, "num_items", 1)
    names = list(confusions)
    if num_items is None:
        first = confusions[names[0]]
        if callable(first):
            raise ValueError("num_items is required when the sources are callables")
        num_items = int(_as_numpy_confusion(first, f"checkpoint {names[0]!r}").shape[0])
    fold_list = (
        _check_folds(folds, num_items)
        if folds is not None
        else cross_validation_folds(num_items, num_folds, seed)
    )
    F = len(fold_list)
    if ddof >= F:
        raise ValueError(f"ddof must be below the number of folds ({F}), got {ddof}")

    fold_sums, totals = [], []
    for name in names:
        sums, total, _ = _fold_sums(name, confusions[name], fold_list, num_items)
        fold_sums.append(sums)
        totals.append(total)
    K = fold_sums[0].shape[-1]
    for name, s in zip(names, fold_sums):
        if s.shape[-1] != K:
            raise ValueError(f"checkpoint {name!r} has {s.shape[-1]} classes, expected {K}")
    ex = _check_exclude(exclude, K)
    sums_all = np.stack(fold_sums)  # (C, F, K, K)
    tests_all = np.stack(totals)[:, None] - sums_all  # (C, F, K, K): images outside fold f
    selection = _miou_np(_iou_np(sums_all), ex, absent)  # (C, F)

    chosen, sel_miou, fold_miou, per_class = [], [], [], []
    for f in range(F):
        c = _best(selection[:, f].tolist())
        if c < 0:
            raise ValueError(
                f"fold {f}: no checkpoint has a defined mIoU (no counted pixels in the fold?)"
            )
        iou = _iou_np(tests_all[c, f])
        chosen.append(names[c])
        sel_miou.append(float(selection[c, f]))
        fold_miou.append(float(_miou_np(iou, ex, absent)))
        per_class.append(iou)
        logger.debug(
            "fold %d: chose %r (mIoU %.4f on the fold), %.4f on the other folds",
            f,
            names[c],
            sel_miou[-1],
            fold_miou[-1],
        )
    scores = np.asarray(fold_miou)
    return CrossValidationResult(
        mean=float(scores.mean()),
        std=float(scores.std(ddof=ddof)),
        fold_miou=fold_miou,
        chosen=chosen,
        selection_miou=sel_miou,
        folds=fold_list,
        per_class_iou=np.stack(per_class),
        checkpoints=names,
        selection_table=selection,
        exclude=ex,
        ddof=ddof,
    )


@keyword_hints
def holdout_protocol(
    val_scores: Mapping[Any, Any],
    test: Mapping[Any, Any] | Callable[[Any], Any],
    *,
    exclude: Iterable[int] = (),
    absent: str = "nan",
) -> HoldoutResult:
    """Choose a checkpoint by validation score, then score it on the whole test set.

    ``val_scores`` maps checkpoint -> a score where higher is better (e.g. mIoU on
    held-out training data), or -> a confusion matrix (K, K) / (N, K, K), whose mIoU
    is then the score. Ties go to the first checkpoint in the mapping's order.
    ``test`` maps checkpoint -> its test confusion (K, K) or (N, K, K), or is a
    callable ``test(checkpoint)`` returning it (only the chosen one is evaluated).
    A NaN score (undefined) or -inf (the worst) is never chosen, and a ValueError when
    every score is one; a bool is no score and is refused, naming its checkpoint.
    """
    if not val_scores:
        raise ValueError("val_scores is empty: give at least one checkpoint")
    names = list(val_scores)
    scores: dict[Hashable, float] = {}
    from_confusion: set[Hashable] = set()
    for name in names:
        v = val_scores[name]
        if is_bool(v):  # True was a score of 1.0, chosen over every mIoU
            raise ValueError(
                f"validation score of checkpoint {name!r} must be a number or a confusion "
                f"matrix, got {v!r:.60}"
            )
        if isinstance(v, (int, float, np.floating, np.integer)) or (
            isinstance(v, (torch.Tensor, np.ndarray)) and np.ndim(v) == 0
        ):
            scores[name] = float(v)
        else:
            from_confusion.add(name)
            scores[name] = metrics_from_confusion(
                _as_numpy_confusion(v, f"validation of {name!r}"), exclude, absent
            )["miou"]
    best = _best([scores[n] for n in names])
    if best < 0:
        raise ValueError(
            "no checkpoint has a defined validation score (all NaN or -inf): "
            + short_list(repr(n) for n in names)
        )
    name = names[best]
    if callable(test):
        conf = test(name)
    else:
        if name not in test:
            raise KeyError(f"test has no confusion for the chosen checkpoint {name!r}")
        conf = test[name]
    result = metrics_from_confusion(_as_numpy_confusion(conf, f"test of {name!r}"), exclude, absent)
    logger.debug(
        "holdout: chose %r (validation %.4f), test mIoU %.4f", name, scores[name], result["miou"]
    )
    return HoldoutResult(
        checkpoint=name,
        val_score=scores[name],
        test=result,
        val_scores=scores,
        val_is_miou=name in from_confusion,
    )
