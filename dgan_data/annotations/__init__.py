"""Annotated samples: the few hand-labelled generated images an interpreter learns from.

``folder`` reads, validates and writes annotation folders; ``sample`` writes a folder of
generated images ready to annotate; ``tools`` imports masks drawn in annotation tools
(COCO, LabelMe, CVAT, VOC, PNG); ``datasetgan`` imports the DatasetGAN release.
"""

from __future__ import annotations

from .datasetgan import import_datasetgan_release
from .folder import (
    CROPS,
    DEFAULT_TOLERANCE,
    FORMAT_VERSION,
    AnnotationError,
    Annotations,
    SampleCheck,
    resolve_crop,
)
from .sample import SampledFolder, sample_annotation_folder
from .tools import ImportReport, MaskImportError, import_masks

__all__ = [
    "CROPS",
    "DEFAULT_TOLERANCE",
    "FORMAT_VERSION",
    "AnnotationError",
    "Annotations",
    "ImportReport",
    "MaskImportError",
    "SampleCheck",
    "SampledFolder",
    "import_datasetgan_release",
    "import_masks",
    "resolve_crop",
    "sample_annotation_folder",
]
