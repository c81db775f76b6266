"""Annotations.image_file/mask_file/latent_file: a bad sample index is named with the
number of samples, as a list would treat it (negative counts from the end)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgan_data.annotations import Annotations


def _three() -> Annotations:
    masks = np.zeros((3, 8, 8), dtype=np.uint8)
    return Annotations.from_arrays(masks=masks, class_names=["bg", "fg"], seeds=[5, 6, 7])


@pytest.mark.parametrize("method", ["image_file", "mask_file", "latent_file"])
def test_index_past_the_end_names_the_sample_count(method):
    ann = _three()
    with pytest.raises(IndexError, match=r"sample index 9 out of range.*3 samples \(0\.\.2\)"):
        getattr(ann, method)(9)
    with pytest.raises(IndexError, match=r"sample index -4 out of range"):
        getattr(ann, method)(-4)


@pytest.mark.parametrize("method", ["image_file", "mask_file", "latent_file"])
def test_non_integer_index_is_a_type_error(method):
    ann = _three()
    for bad in (1.0, "1", True, None):
        with pytest.raises(TypeError, match="sample index must be an int"):
            getattr(ann, method)(bad)


def test_negative_and_numpy_indices_work_like_a_list():
    ann = _three()
    assert ann.image_file(-1) == ann.image_file(2) == f"images/{ann.ids[2]}.png"
    assert ann.mask_file(np.int64(1)) == f"masks/{ann.ids[1]}.png"
    assert ann.latent_file(-3) == f"latents/{ann.ids[0]}.npy"
    assert ann.image_file(2) != ann.image_file(1)


def test_a_labeled_folder_and_an_export_name_a_bad_index_the_same_way(tmp_path, reference_dir):
    from test_export import _export, save_models

    from dgan_data import ExportedDataset
    from dgan_data.downstream.realdata import LabeledFolder, write_labeled_folder

    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    masks = np.ones((2, 4, 4), dtype=np.uint8)
    folder = LabeledFolder(write_labeled_folder(tmp_path / "real", images, masks))
    assert folder[-1][1].shape == folder[1][1].shape
    with pytest.raises(IndexError, match=r"sample index 2 out of range: this folder has 2 samples"):
        folder[2]
    with pytest.raises(TypeError, match="sample index must be an int, got str"):
        folder["0"]  # a TypeError from comparing str and int inside before
    with pytest.raises(TypeError, match="sample index must be an int, got float"):
        folder[1.0]

    out = tmp_path / "export"
    _export(save_models(tmp_path, reference_dir), out, num=4, drop_uncertain=0.0)
    data = ExportedDataset(out)
    assert len(data) == 4
    with pytest.raises(IndexError, match=r"item index 4 out of range: this export has 4 items"):
        data[4]  # a bare "list index out of range" before
    assert torch.equal(data[-4][1], data[0][1])
