"""Segmentation metrics and the DatasetGAN evaluation protocols.

``confusion``: confusion matrices (rows = ground truth, columns = prediction; pixels at
``ignore_index`` not counted), dataset-level IoU / mIoU and AUROC; ``protocols``: the
paper's 5-fold and hold-out checkpoint protocols on per-checkpoint confusion matrices;
``report``: per-class IoU tables. Every name is importable from here.
"""

from __future__ import annotations

from .confusion import (
    ConfusionMatrix,
    auroc,
    confusion_matrix,
    metrics_from_confusion,
    per_image_confusion,
)
from .protocols import (
    CrossValidationResult,
    HoldoutResult,
    cross_validation_folds,
    five_fold_protocol,
    holdout_protocol,
)
from .report import format_iou_table

__all__ = [
    "ConfusionMatrix",
    "CrossValidationResult",
    "HoldoutResult",
    "auroc",
    "confusion_matrix",
    "cross_validation_folds",
    "five_fold_protocol",
    "format_iou_table",
    "holdout_protocol",
    "metrics_from_confusion",
    "per_image_confusion",
]
