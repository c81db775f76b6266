"""Hostile annotation folders: paths leading out, wrong JSON types, non-finite latents.

Every case must be refused with an AnnotationError naming the file and the field, never a
TypeError or RecursionError, and nothing outside the folder may be read or written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_annotations import TinyGenerator, problems_of, sampled_folder

from dgan_data.annotations import AnnotationError, Annotations, sample_annotation_folder


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Path:
    return sampled_folder(TinyGenerator(), tmp_path_factory.mktemp("intact") / "s")


@pytest.fixture
def folder(tmp_path, intact) -> Path:
    copy = tmp_path / "s"
    shutil.copytree(intact, copy)
    Annotations.load(copy)  # the intact copy loads
    return copy


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def load_problems(folder: Path) -> str:
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    return problems_of(err)


def test_a_symlinked_mask_leading_out_is_refused(folder, tmp_path):
    secret = tmp_path / "secret.png"
    shutil.copy(folder / "masks" / "00000.png", secret)
    (folder / "masks" / "00000.png").unlink()
    os.symlink(secret, folder / "masks" / "00000.png")
    assert "leads outside" in load_problems(folder)


def test_a_symlinked_masks_folder_leading_out_is_refused(folder, tmp_path):
    outside = tmp_path / "outside_masks"
    shutil.move(folder / "masks", outside)
    os.symlink(outside, folder / "masks")
    text = load_problems(folder)
    assert "leads outside" in text and "masks/00000.png" in text


def test_a_symlinked_manifest_leading_out_is_refused(folder, tmp_path):
    shutil.move(folder / "manifest.json", tmp_path / "manifest.json")
    os.symlink(tmp_path / "manifest.json", folder / "manifest.json")
    assert "leads outside" in load_problems(folder)


def test_absolute_paths_in_the_manifest_are_refused(folder):
    edit_manifest(folder, lambda m: m["samples"][1].update(latent=str(folder / "x.npy")))
    assert "'latent' = " in load_problems(folder) and "must stay inside" in load_problems(folder)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("crop", 5, "crop must be 4 ints"),
        ("crop", "upside-down", "unknown crop"),
        ("latent_shape", 5, "latent_shape"),
        ("class_names", "wheel", "class_names"),
        ("mask_resolution", ["64", 64], "mask_resolution"),
        ("truncation", {"psi": "abc"}, "truncation.psi"),
        ("truncation", [0.7], "truncation"),
        ("samples", {"id": "00000"}, "samples"),
        ("format_version", "1", "format_version"),
    ],
)
def test_fields_of_the_wrong_type_are_named(folder, field, value, expected):
    edit_manifest(folder, lambda m: m.update({field: value}))
    text = load_problems(folder)
    assert expected in text and "manifest.json" in text


def test_a_newline_in_an_id_is_refused(folder):
    edit_manifest(folder, lambda m: m["samples"][0].update(id="00000\n"))
    assert "'id' must be a file-name-safe string" in load_problems(folder)


def test_absurdly_nested_json_is_refused_without_recursion_error(folder):
    deep = "[" * 100_000 + "]" * 100_000
    text = (folder / "manifest.json").read_text().rstrip()
    (folder / "manifest.json").write_text(text[:-1] + ', "extra": ' + deep + "}")
    assert "nested" in load_problems(folder)


def test_a_non_finite_latent_is_refused(folder):
    path = folder / "latents" / "00001.npy"
    w = np.load(path)
    w[0, 0] = np.nan
    np.save(path, w)
    assert "latents/00001.npy: the latent holds NaN or inf values" in load_problems(folder)


def test_from_arrays_refuses_non_finite_latents():
    w = np.zeros((1, 3, 6), np.float32)
    w[0, 1, 2] = np.inf
    masks = np.zeros((1, 12, 16), np.uint8)
    with pytest.raises(AnnotationError, match="w holds NaN or inf"):
        Annotations.from_arrays(w=w, masks=masks, class_names=["a", "b"])


def test_sampling_into_a_folder_whose_images_lead_out_writes_nothing(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "s"
    folder.mkdir()
    os.symlink(outside, folder / "images")
    with pytest.raises(AnnotationError, match="leads outside"):
        sample_annotation_folder(TinyGenerator(), 2, folder, class_names=["a", "b"])
    assert list(outside.iterdir()) == []


def test_saving_over_a_file_is_refused(tmp_path, folder):
    ann = Annotations.load(folder)
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    with pytest.raises(AnnotationError, match="not a folder"):
        ann.save(target)


def test_schema_error_for_a_huge_integer_is_short():
    from dgan_data.schema import Int, SchemaError, check_document

    huge = 10**4000  # repr() of a larger one would itself raise in Python >= 3.11
    with pytest.raises(SchemaError) as err:
        check_document({"count": huge}, {"count": Int(0, 100)}, "manifest.json")
    message = str(err.value)
    assert "manifest.json" in message and "count" in message
    assert "bits" in message and len(message) < 200
