"""dgan_data: DatasetGAN as a PyTorch dataset.

A pretrained GAN plus a handful of annotated images become an endless stream of
labeled segmentation data: ``DataLoader(DatasetGANStream("toyface-14"), batch_size=16)``.
This module re-exports the public API; the package's layers are listed in the README.
"""

from __future__ import annotations

import os as _os  # private: ``dgan_data.os`` is no part of the API

_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from ._version import __version__
from .annotations import (
    AnnotationError,
    Annotations,
    import_datasetgan_release,
    import_masks,
    sample_annotation_folder,
)
from .augment import BatchAugment, make_augment
from .export import ExportedDataset, export_dataset, merge_shards, verify_export
from .generators import (
    CheckpointError,
    Generator,
    StyleGAN1Generator,
    StyleGAN2Generator,
)
from .holdout import holdout_scores
from .interpreter import Interpreter, Prediction
from .labeler import LabeledBatch, Labeler
from .metrics import ConfusionMatrix, five_fold_protocol, holdout_protocol
from .novelty import FeatureNovelty
from .palette import make_palette
from .presets import (
    Preset,
    PresetFilesMissing,
    cache_dir,
    get_preset,
    list_presets,
    load_generator,
    load_interpreter,
    register_preset,
)
from .preview import preview, preview_annotations, preview_export
from .stream import DatasetGANStream
from .suggest import candidate_seeds, suggest_annotations, write_suggestions
from .uncertainty import StreamingQuantile, js_divergence

__all__ = [
    "AnnotationError",
    "Annotations",
    "BatchAugment",
    "CheckpointError",
    "ConfusionMatrix",
    "DatasetGANStream",
    "ExportedDataset",
    "FeatureNovelty",
    "Generator",
    "Interpreter",
    "LabeledBatch",
    "Labeler",
    "Prediction",
    "Preset",
    "PresetFilesMissing",
    "StreamingQuantile",
    "StyleGAN1Generator",
    "StyleGAN2Generator",
    "__version__",
    "cache_dir",
    "candidate_seeds",
    "export_dataset",
    "five_fold_protocol",
    "get_preset",
    "holdout_protocol",
    "holdout_scores",
    "import_datasetgan_release",
    "import_masks",
    "js_divergence",
    "list_presets",
    "load_generator",
    "load_interpreter",
    "make_augment",
    "make_palette",
    "merge_shards",
    "preview",
    "preview_annotations",
    "preview_export",
    "register_preset",
    "sample_annotation_folder",
    "suggest_annotations",
    "verify_export",
    "write_suggestions",
]
