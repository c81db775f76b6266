"""Per-class IoU tables for the terminal and the README."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..conventions import short_list
from .protocols import CrossValidationResult, HoldoutResult

__all__ = ["format_iou_table"]


# ---------------------------------------------------------------- reporting
def _fmt(x: float | None, percent: bool, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x * 100 if percent else x:.{digits}f}"


def format_iou_table(
    result: Mapping[str, Any] | CrossValidationResult | HoldoutResult,
    class_names: Sequence[str] | None = None,
    *,
    percent: bool = True,
    digits: int = 1,
) -> str:
    """A readable per-class table of a metrics dict, a cross-validation or a holdout result.

    Classes absent from both target and prediction show "-"; classes left out of the
    mean are marked. Scores are percentages unless ``percent=False``; a holdout
    validation score given as a number (not a confusion matrix) is shown as given, since
    its scale is the caller's. A cross-validation's per-class std uses the protocol's
    ``ddof`` ("-" where fewer than ``ddof + 1`` folds have the class).
    """
    header = ""
    if isinstance(result, HoldoutResult):
        val = (
            _fmt(result.val_score, percent, digits)
            if result.val_is_miou
            else _fmt(result.val_score, False, digits + 3)
        )
        header = f"checkpoint {result.checkpoint!r} (validation score {val})\n"
        result = result.test
    if isinstance(result, CrossValidationResult):
        per_class = result.per_class_iou
        K = per_class.shape[1]
        cols = ("IoU mean", "IoU std")
        with np.errstate(invalid="ignore"):
            present = ~np.isnan(per_class)
            counts = present.sum(0)
            mean = np.where(counts > 0, np.nansum(per_class, 0) / np.maximum(counts, 1), np.nan)
            sq = np.nansum((per_class - mean) ** 2, 0)
            dof = counts - result.ddof
            std = np.where(dof > 0, np.sqrt(sq / np.maximum(dof, 1)), np.nan)
        rows_vals = [(mean[k], std[k]) for k in range(K)]
        excluded = set(result.exclude)
        main = (
            f"mIoU {_fmt(result.mean, percent, digits)} ± {_fmt(result.std, percent, digits)} "
            f"over {len(result.fold_miou)} folds"
        )
        extra = f"\nchosen checkpoints: {short_list(repr(c) for c in result.chosen)}"
        averaged = None
    else:
        iou = np.asarray(result["iou"], dtype=np.float64)
        K = iou.shape[0]
        acc = result.get("per_class_accuracy")
        acc = np.full(K, np.nan) if acc is None else np.asarray(acc, dtype=np.float64)
        support = result.get("support")
        cols = ("IoU", "acc", "pixels")
        rows_vals = [
            (iou[k], acc[k], None if support is None else int(support[k])) for k in range(K)
        ]
        excluded = set(result.get("exclude", ()))
        main = f"mIoU {_fmt(result['miou'], percent, digits)}"
        extra = ""
        nan_ok = result.get("absent", "nan") == "nan"
        averaged = sum(
            1
            for k in range(K)
            if k not in set(result.get("exclude", ())) and not (nan_ok and math.isnan(iou[k]))
        )
        if "pixel_accuracy" in result:
            extra = f" | pixel accuracy {_fmt(result['pixel_accuracy'], percent, digits)}"
    if class_names is None:
        class_names = [f"class {k}" for k in range(K)]
    if len(class_names) != K:
        raise ValueError(f"{len(class_names)} class names for {K} classes")
    footer = main if averaged is None else f"{main} over {averaged} of {K} classes"
    if excluded:
        footer += f" (excluded: {', '.join(str(class_names[k]) for k in sorted(excluded))})"
    footer += extra

    name_w = max(5, *(len(str(n)) for n in class_names))
    lines = [f"{'id':>3}  {'class':<{name_w}}  " + "  ".join(f"{c:>9}" for c in cols)]
    for k in range(K):
        cells = []
        for v in rows_vals[k]:
            if isinstance(v, int):
                cells.append(f"{v:>9d}")
            else:
                cells.append(f"{_fmt(None if v is None else float(v), percent, digits):>9}")
        mark = "  (excluded)" if k in excluded else ""
        lines.append(f"{k:>3}  {class_names[k]!s:<{name_w}}  " + "  ".join(cells) + mark)
    return header + "\n".join([*lines, footer])
