"""sample_annotation_folder writes only into a folder it can resume: absent, empty, or
holding its manifest (the command's refusal of a non-empty folder, in the library)."""

from __future__ import annotations

import json

import pytest
from test_annotations import CLASSES, TinyGenerator

import dgan_data.annotations.sample as sample_module
from dgan_data.annotations import AnnotationError, sample_annotation_folder


def _sample(root, num=2):
    return sample_annotation_folder(
        TinyGenerator(height=8, width=8), num, root, class_names=CLASSES
    )


def test_a_folder_of_the_users_without_a_manifest_is_refused_untouched(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(AnnotationError, match=r"holds no manifest\.json to resume") as err:
        _sample(root)
    assert str(root) in str(err.value)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]
    assert (root / "notes.txt").read_text() == "keep me"


def test_a_stray_image_folder_is_not_adopted(tmp_path):
    """images/ of another run, without a manifest: its PNGs would sit among the samples."""
    root = tmp_path / "ann"
    (root / "images").mkdir(parents=True)
    (root / "images" / "other.png").write_bytes(b"not ours")
    with pytest.raises(AnnotationError, match=r"holds no manifest\.json"):
        _sample(root)
    assert not (root / "manifest.json").exists()


@pytest.mark.parametrize("state", ["absent", "empty"])
def test_an_absent_or_empty_folder_is_written(tmp_path, state):
    root = tmp_path / "ann"
    if state == "empty":
        root.mkdir()
    out = _sample(root)
    assert (root / "manifest.json").is_file() and (root / "masks").is_dir()
    assert len(out.ids) == 2


def test_a_folder_interrupted_at_its_manifest_resumes(tmp_path, monkeypatch):
    """An interrupt at the manifest's write leaves nothing the next run refuses (masks/
    alone, made before the manifest, made the folder one without a manifest)."""
    root = tmp_path / "ann"
    real_write_json = sample_module.write_json

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_module, "write_json", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _sample(root)
    monkeypatch.setattr(sample_module, "write_json", real_write_json)
    out = _sample(root)
    assert sorted(out.ids) == sorted(p.stem for p in (root / "images").iterdir())


def test_a_finished_folder_still_resumes(tmp_path):
    root = tmp_path / "ann"
    first = _sample(root)
    again = _sample(root, num=3)  # grows the same folder
    assert again.ids[:2] == first.ids and len(again.ids) == 3
    assert len(json.loads((root / "manifest.json").read_text())["samples"]) == 3
