"""dgan_data: DatasetGAN as a PyTorch dataset.

A pretrained GAN plus a handful of annotated images become an endless stream of
labeled segmentation data: ``DataLoader(DatasetGANStream(...), batch_size=None)``.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from .annotations import (
    AnnotationError,
    Annotations,
    import_datasetgan_release,
    sample_annotation_folder,
)
from .augment import BatchAugment, make_augment
from .generators import (
    CheckpointError,
    Generator,
    StyleGAN1Generator,
    StyleGAN2Generator,
    load_generator,
)
from .interpreter import Interpreter, Prediction
from .metrics import ConfusionMatrix, five_fold_protocol, holdout_protocol
from .presets import (
    Preset,
    PresetFilesMissing,
    cache_dir,
    get_preset,
    list_presets,
    register_preset,
)
from .stream import DatasetGANStream
from .uncertainty import StreamingQuantile, js_divergence

__version__ = "0.1.0"

__all__ = [
    "AnnotationError",
    "Annotations",
    "BatchAugment",
    "CheckpointError",
    "ConfusionMatrix",
    "DatasetGANStream",
    "Generator",
    "Interpreter",
    "Prediction",
    "Preset",
    "PresetFilesMissing",
    "StreamingQuantile",
    "StyleGAN1Generator",
    "StyleGAN2Generator",
    "__version__",
    "cache_dir",
    "five_fold_protocol",
    "get_preset",
    "holdout_protocol",
    "import_datasetgan_release",
    "js_divergence",
    "list_presets",
    "load_generator",
    "make_augment",
    "register_preset",
    "sample_annotation_folder",
]
