"""Importers name a side file that is a link to nothing instead of passing over it.

CVAT's ``labelmap.txt`` decides which colour is which class: one that was a symlink to
nothing (or a pipe) was taken for absent, and the masks were read through the Pascal
VOC colours, a silent mislabelling or a confusing "colours not in the palette". The
DatasetGAN release's ``avg_latent_stylegan1.npy`` was passed over the same way, and a
release folder that was such a link was "no such folder"."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_annotations import CLASSES as RELEASE_CLASSES
from test_annotations import write_release
from test_import_masks import make_folder, save_png

from dgan_data.annotations import AnnotationError, import_datasetgan_release
from dgan_data.annotations.tools import MaskImportError, import_masks

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs symlinks and FIFOs")


def plant(path: Path, kind: str) -> str:
    """A pipe or a link to nothing at ``path``; the regex of how it must be named."""
    if kind == "pipe":
        os.mkfifo(path)
        return r"is not a regular file \(a pipe\)"
    path.symlink_to(path.parent / f"lost-{path.name}")
    return rf"is a broken symlink \(to .*lost-{path.name.replace('.', '[.]')}\)"


def cvat_export(root: Path) -> Path:
    save_png(root / "SegmentationClass" / "00000.png", [[(0, 0, 0)] * 6] * 6)
    return root


@pytest.mark.parametrize("kind", ["link to nothing", "pipe"])
def test_a_cvat_labelmap_that_is_no_file_is_named(tmp_path, kind):
    ann = make_folder(tmp_path / "ann")
    src = cvat_export(tmp_path / "cvat")
    expected = r"labelmap\.txt " + plant(src / "labelmap.txt", kind) + ", not the label map"
    with pytest.raises(MaskImportError, match=expected):
        import_masks(src, ann, format="cvat-mask")
    assert not list((ann / "masks").glob("*.png"))


def test_a_release_average_latent_link_to_nothing_is_named(tmp_path):
    mask = np.zeros((8, 8), np.int64)
    folder = write_release(tmp_path / "r", [mask], np.zeros((1, 8)), ext="png")
    (folder / "avg_latent_stylegan1.npy").symlink_to(tmp_path / "gone.npy")
    with pytest.raises(AnnotationError, match=r"avg_latent_stylegan1\.npy: is a broken symlink"):
        import_datasetgan_release(folder, class_names=RELEASE_CLASSES)


def test_a_release_folder_that_is_a_link_to_nothing_is_named(tmp_path):
    folder = tmp_path / "release"
    folder.symlink_to(tmp_path / "gone")
    with pytest.raises(AnnotationError, match=r"release: is a broken symlink \(to .*gone\), not a"):
        import_datasetgan_release(folder, class_names=RELEASE_CLASSES)


def test_a_mask_png_that_is_a_link_to_nothing_is_not_skipped(tmp_path):
    """It was left out of the listing, so its sample was reported "missing" as if no
    mask had been drawn, and the other masks were imported."""
    ann = make_folder(tmp_path / "ann")
    src = cvat_export(tmp_path / "cvat")
    (src / "labelmap.txt").write_text("background:0,0,0::\n")
    (src / "SegmentationClass" / "00001.png").symlink_to(tmp_path / "lost.png")
    with pytest.raises(MaskImportError, match=r"00001\.png is a broken symlink \(to .*lost\.png\)"):
        import_masks(src, ann, format="cvat-mask")
    (src / "SegmentationClass").rename(tmp_path / "elsewhere")
    (src / "SegmentationClass").symlink_to(tmp_path / "gone")
    with pytest.raises(MaskImportError, match=r"SegmentationClass: is a broken symlink"):
        import_masks(src, ann, format="cvat-mask")


@pytest.mark.parametrize("kind", ["link to nothing", "pipe"])
def test_a_release_image_that_is_no_file_is_named(tmp_path, kind, no_hang):
    """Both were "image_0.jpg: missing" (the png was there); the pipe is never opened."""
    mask = np.zeros((8, 8), np.int64)
    folder = write_release(tmp_path / "r", [mask], np.zeros((1, 8)), ext="png")
    (folder / "image_0.png").unlink()
    expected = r"image_0\.png: " + plant(folder / "image_0.png", kind)
    with pytest.raises(AnnotationError, match=expected):
        import_datasetgan_release(folder, class_names=RELEASE_CLASSES)
    imported = import_datasetgan_release(folder, class_names=RELEASE_CLASSES, require_images=False)
    assert imported.masks[0].tolist() == mask.tolist()
