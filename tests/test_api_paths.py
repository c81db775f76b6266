"""Where the Python API writes: ``Annotations.save`` refuses, before any file, what it
cannot write (a ``generator_description`` that is not JSON left the old manifest
pointing at new masks) and an existing annotation folder without ``overwrite``; an
empty path is not the current folder; ``resume="no"`` is not True."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgan_data import Annotations
from dgan_data.annotations import AnnotationError


def _ann(value: int, seeds=(0, 1), **kw) -> Annotations:
    masks = np.full((len(seeds), 8, 8), value, np.uint8)
    return Annotations.from_arrays(masks=masks, class_names=["bg", "fg"], seeds=list(seeds), **kw)


@pytest.mark.parametrize(
    "description", [{"note": np.float32(1.0)}, {"a": object()}, {"x": math.nan}]
)
def test_a_description_that_is_not_json_is_refused_before_any_file(tmp_path, description):
    with pytest.raises(AnnotationError, match="generator_description cannot be written as JSON"):
        _ann(1, generator_description=description).save(tmp_path / "f")
    assert not any(p.is_file() for p in (tmp_path / "f").rglob("*"))


def test_an_existing_folder_is_kept_when_the_new_save_fails(tmp_path):
    _ann(0).save(tmp_path / "f")
    bad = _ann(1, seeds=(5, 6), generator_description={"note": np.float32(1.0)})
    with pytest.raises(AnnotationError):
        bad.save(tmp_path / "f", overwrite=True)
    again = Annotations.load(tmp_path / "f")
    assert again.seeds == [0, 1] and int(again.masks.max()) == 0


def test_an_existing_annotation_folder_needs_overwrite(tmp_path):
    _ann(0).save(tmp_path / "f")
    with pytest.raises(AnnotationError, match="pass overwrite=True"):
        _ann(1, seeds=(5, 6)).save(tmp_path / "f")
    assert int(Annotations.load(tmp_path / "f").masks.max()) == 0
    _ann(1, seeds=(5, 6)).save(tmp_path / "f", overwrite=True)
    replaced = Annotations.load(tmp_path / "f")
    assert replaced.seeds == [5, 6] and int(replaced.masks.min()) == 1
    with pytest.raises(ValueError, match="overwrite must be True or False"):
        _ann(1).save(tmp_path / "g", overwrite="no")


def test_empty_paths_are_refused(tmp_path, monkeypatch):
    from dgan_data import load_generator, load_interpreter, sample_annotation_folder

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="folder is an empty path"):
        _ann(0).save("")
    G = load_generator("toyface-14", device="cpu")
    with pytest.raises(ValueError, match="out_dir is an empty path"):
        sample_annotation_folder(G, 1, "", class_names=["bg", "fg"])
    with pytest.raises(ValueError, match="path is an empty path"):
        load_interpreter("toyface-14").save(" ")
    assert not any(tmp_path.iterdir())


def test_train_segmentation_refuses_an_empty_checkpoint_dir_and_a_string_resume(
    tmp_path, monkeypatch
):
    from dgan_data.downstream.train import build_segmentation_model, train_segmentation

    monkeypatch.chdir(tmp_path)
    images, masks = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    net = build_segmentation_model(3, "unet")
    with pytest.raises(ValueError, match="checkpoint_dir is an empty path"):
        train_segmentation(net, [(images, masks)], 1, checkpoint_dir="", progress=False)
    with pytest.raises(ValueError, match="resume must be True or False"):
        train_segmentation(net, [(images, masks)], 1, checkpoint_dir="ck", resume="no",
                           progress=False)  # fmt: skip
    assert not any(tmp_path.iterdir())
