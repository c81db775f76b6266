"""Annotated samples: the few hand-labelled generated images an interpreter learns from.

``folder`` holds :class:`Annotations` (checks, latents, merge, validation against a
generator); ``format`` the folder format's names, limits and error; ``files`` reads and
writes the folders; ``truncation`` the stored latents' truncation arithmetic; ``sample``
writes a folder of generated images ready to annotate; ``tools`` imports masks drawn in
annotation tools (COCO, LabelMe, CVAT, VOC, PNG), read by ``tool_readers`` into the
shapes of ``shapes``; ``datasetgan`` imports the DatasetGAN release.
"""

from __future__ import annotations

from .datasetgan import import_datasetgan_release
from .folder import Annotations, SampleCheck
from .format import CROPS, DEFAULT_TOLERANCE, FORMAT_VERSION, AnnotationError, resolve_crop
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
