"""Annotated samples: the few hand-labelled generated images an interpreter learns from.

``folder`` reads, validates and writes annotation folders; ``sample`` writes a folder of
generated images ready to annotate; ``datasetgan`` imports the DatasetGAN release.
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

__all__ = [
    "CROPS",
    "DEFAULT_TOLERANCE",
    "FORMAT_VERSION",
    "AnnotationError",
    "Annotations",
    "SampleCheck",
    "SampledFolder",
    "import_datasetgan_release",
    "resolve_crop",
    "sample_annotation_folder",
]
