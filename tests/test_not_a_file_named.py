"""What sits where a file should be is named, the same way by every loader.

Before, a symlink whose target is gone was "no such file" (or "missing") although ``ls``
lists it, a symlink loop escaped as a raw ``OSError``, a link to a folder in a labeled
folder was called a broken symlink, a pipe was "a device, FIFO or socket?", and
``load_segmentation_model`` opened a pipe and waited for a writer forever.
``fileio.why_not_a_file`` now says which, and the loaders use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan_data import (
    AnnotationError,
    Annotations,
    CheckpointError,
    ExportedDataset,
    load_generator,
    load_interpreter,
)
from dgan_data.downstream.models import load_segmentation_model
from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError
from dgan_data.fileio import read_json, require_file, why_not_a_file, why_not_a_folder
from dgan_data.toy.annotator import load_annotator

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs symlinks and FIFOs")


def broken_link(path: Path) -> Path:
    path.symlink_to(path.parent / f"gone-{path.name}")
    return path


def loop(path: Path) -> Path:
    path.symlink_to(path)
    return path


def test_why_not_a_file_names_each_kind(tmp_path):
    regular = tmp_path / "a.json"
    regular.write_text("{}")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-file").symlink_to(regular)
    (tmp_path / "to-folder").symlink_to(tmp_path)
    assert why_not_a_file(regular) is None
    assert why_not_a_file(tmp_path / "to-file") is None  # links are followed
    assert why_not_a_file(tmp_path / "absent") == "does not exist"
    assert why_not_a_file(tmp_path) == "is a folder"
    assert why_not_a_file(tmp_path / "to-folder") == "is a folder"
    assert why_not_a_file(tmp_path / "pipe") == "is not a regular file (a pipe)"
    link = broken_link(tmp_path / "b.pt")
    assert why_not_a_file(link) == f"is a broken symlink (to {tmp_path / 'gone-b.pt'})"
    assert why_not_a_file(loop(tmp_path / "l.pt")) == "is a symlink loop"


def test_require_file_raises_the_usual_types_with_the_reason(tmp_path):
    regular = tmp_path / "a.json"
    regular.write_text("{}")
    os.mkfifo(tmp_path / "pipe")
    assert require_file(str(regular)) == regular
    with pytest.raises(FileNotFoundError, match=r"absent: no such file"):
        require_file(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"b\.pt is a broken symlink \(to .*gone-b\.pt\)"):
        require_file(broken_link(tmp_path / "b.pt"))
    with pytest.raises(IsADirectoryError, match=r"is a folder, not a checkpoint"):
        require_file(tmp_path, "checkpoint")
    with pytest.raises(ValueError, match=r"pipe is not a regular file \(a pipe\)"):
        require_file(tmp_path / "pipe")
    with pytest.raises(ValueError, match=r"l\.pt is a symlink loop"):
        require_file(loop(tmp_path / "l.pt"))


def test_read_json_names_a_broken_link_and_a_loop(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"c\.json is a broken symlink \(to .*gone-c\.json"):
        read_json(broken_link(tmp_path / "c.json"))
    with pytest.raises(ValueError, match=r"l\.json is a symlink loop"):  # was a raw OSError
        read_json(loop(tmp_path / "l.json"))


@pytest.mark.parametrize("name", ["g.pt", "g.safetensors"])
def test_load_generator_names_a_broken_link(tmp_path, name):
    link = broken_link(tmp_path / name)
    with pytest.raises((CheckpointError, FileNotFoundError), match=r"is a broken symlink \(to "):
        load_generator(link)


def test_load_interpreter_names_a_broken_link_and_a_loop(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"i\.safetensors: is a broken symlink \(to "):
        load_interpreter(broken_link(tmp_path / "i.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"l\.safetensors: is a symlink loop"):
        load_interpreter(loop(tmp_path / "l.safetensors"))


def test_load_segmentation_model_refuses_a_pipe_without_blocking(tmp_path, no_hang):
    pipe = tmp_path / "model.pt"
    os.mkfifo(pipe)
    with pytest.raises(ValueError, match=r"model\.pt is not a regular file \(a pipe\)"):
        load_segmentation_model(pipe)
    with pytest.raises(FileNotFoundError, match=r"m\.pt is a broken symlink \(to "):
        load_segmentation_model(broken_link(tmp_path / "m.pt"))
    with pytest.raises(IsADirectoryError, match=r"is a folder, not a segmentation checkpoint"):
        load_segmentation_model(tmp_path)


def test_load_annotator_names_a_broken_weights_link(tmp_path):
    """Both names are there, so "annotator files missing ... train them" was wrong."""
    weights = broken_link(tmp_path / "a.safetensors")
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"a\.safetensors is a broken symlink") as err:
        load_annotator(weights)
    assert "train them" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="annotator files missing"):  # as before
        load_annotator(tmp_path / "absent.safetensors")


@pytest.fixture
def annotations(tmp_path) -> Path:
    root = tmp_path / "ann"
    Annotations.from_arrays(
        masks=torch.zeros(2, 4, 4, dtype=torch.uint8), class_names=["bg", "x"], seeds=[1, 2]
    ).save(root)
    return root


def problems_of(root: Path) -> str:
    with pytest.raises(AnnotationError) as err:
        Annotations.load(root)
    return str(err.value)


def test_an_annotation_folder_names_a_broken_manifest_link(annotations):
    manifest = annotations / "manifest.json"
    manifest.unlink()
    broken_link(manifest)
    text = problems_of(annotations)
    assert "manifest.json: is a broken symlink (to " in text
    assert "missing" not in text


def test_an_annotation_mask_that_is_a_link_or_a_folder_is_named(annotations):
    masks = sorted((annotations / "masks").iterdir())
    masks[0].unlink()
    broken_link(masks[0])
    masks[1].unlink()
    masks[1].mkdir()
    text = problems_of(annotations)
    assert f"masks/{masks[0].name}: is a broken symlink (to " in text
    assert f"masks/{masks[1].name}: is a folder" in text
    assert "missing" not in text


def test_an_annotation_folder_that_is_a_broken_link_is_named(tmp_path):
    root = broken_link(tmp_path / "ann")
    text = problems_of(root)
    assert "is a broken symlink (to " in text and "not an annotation folder" in text


def test_an_export_description_that_is_a_broken_link_is_named(tmp_path):
    (tmp_path / "export").mkdir()
    broken_link(tmp_path / "export" / "dataset.json")
    with pytest.raises(FileNotFoundError, match=r"dataset\.json: is a broken symlink \(to "):
        ExportedDataset(tmp_path / "export")


def test_a_labeled_folder_entry_linking_to_a_folder_is_not_called_broken(tmp_path):
    root = tmp_path / "real"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / "0.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "masks" / "0.png")
    (root / "images" / "1.png").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(LabeledFolderError) as err:
        LabeledFolder(root)
    text = str(err.value)
    assert "images/1.png: is a folder: subfolders are not searched" in text
    assert "broken" not in text


def test_the_cli_names_a_broken_link(tmp_path):
    link = broken_link(tmp_path / "g.pt")
    done = subprocess.run(
        [sys.executable, "-m", "dgan_data.cli", "inspect", str(link)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    assert done.returncode == 2, done.stderr
    assert f"g.pt: is a broken symlink (to {tmp_path / 'gone-g.pt'})" in done.stderr


def test_import_masks_names_a_broken_source_link(annotations, tmp_path):
    from dgan_data import import_masks
    from dgan_data.annotations.tools import MaskImportError

    src = broken_link(tmp_path / "export.json")
    with pytest.raises(MaskImportError, match=r"export\.json: is a broken symlink \(to "):
        import_masks(src, annotations, format="coco")
    with pytest.raises(MaskImportError, match=r"absent\.json: no such file or folder"):
        import_masks(tmp_path / "absent.json", annotations, format="coco")


def test_why_not_a_folder_names_each_kind(tmp_path):
    (tmp_path / "f").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-folder").symlink_to(tmp_path, target_is_directory=True)
    assert why_not_a_folder(tmp_path) is None
    assert why_not_a_folder(tmp_path / "to-folder") is None
    assert why_not_a_folder(tmp_path / "f") == "is a file"
    assert why_not_a_folder(tmp_path / "absent") == "does not exist"
    assert why_not_a_folder(tmp_path / "pipe") == "is not a folder (a pipe)"
    link = broken_link(tmp_path / "data")
    assert why_not_a_folder(link) == f"is a broken symlink (to {tmp_path / 'gone-data'})"


def test_input_folders_that_are_links_to_nothing_are_named(tmp_path):
    from dgan_data import verify_export

    real = broken_link(tmp_path / "real")
    with pytest.raises(LabeledFolderError) as err:  # was "not a folder"
        LabeledFolder(real)
    assert f"the folder is a broken symlink (to {tmp_path / 'gone-real'})" in str(err.value)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LabeledFolderError, match="the folder is a file"):
        LabeledFolder(tmp_path / "afile")
    export = broken_link(tmp_path / "export")
    for read in (ExportedDataset, verify_export):  # was "dataset.json: no such file"
        with pytest.raises(
            FileNotFoundError,
            match=r"export: is a broken symlink \(to .*\), not a dgan_data export",
        ):
            read(export)
    with pytest.raises(FileNotFoundError, match=r"afile: is a file, not a dgan_data export"):
        ExportedDataset(tmp_path / "afile")


def test_a_labeled_folders_images_folder_that_is_a_broken_link_is_named(tmp_path):
    root = tmp_path / "real"
    root.mkdir()
    (root / "masks").mkdir()
    (root / "images").symlink_to(tmp_path / "gone-images")
    with pytest.raises(LabeledFolderError) as err:  # was "images/: missing folder"
        LabeledFolder(root)
    assert "images/: is a broken symlink (to " in str(err.value)


def test_fit_does_not_replace_a_link_at_out_without_overwrite(capsys, tmp_path):
    """A dangling link at --out was replaced by the interpreter without --overwrite."""
    from dgan_data.cli import main
    from dgan_data.toy.preset import toy_assets_dir

    out = broken_link(tmp_path / "i.safetensors")
    argv = ["fit", "--generator", "toyface-14", "--annotations"]
    argv += [str(Path(toy_assets_dir()) / "annotations"), "--out", str(out), "--max-steps", "1"]
    assert main(argv) == 2
    assert "exists; give --overwrite" in capsys.readouterr().err
    assert out.is_symlink() and not out.exists()


@pytest.mark.parametrize("given", [False, True], ids=["found beside", "given"])
def test_an_average_latent_link_to_nothing_is_named(tmp_path, reference_dir, given):
    """Beside the checkpoint it was "none found; truncation will use zeros" (a warning,
    and images truncated towards another centre); given, "average latent file not found"."""
    pt = tmp_path / "car.for_g_all.pt"
    pt.write_bytes((reference_dir / "datasetgan_stylegan1_64px.for_g_all.pt").read_bytes())
    avg = broken_link(tmp_path / "avg_latent_stylegan1.npy")
    options = {"avg_latent": str(avg)} if given else {}
    with pytest.raises(CheckpointError) as err:
        load_generator(pt, **options)
    assert f"{avg}: the average latent for {pt} is a broken symlink (to " in str(err.value)


def test_an_exported_sample_that_is_a_link_to_nothing_is_named(tmp_path, reference_dir):
    """Opening the export said "<sample>: no such file (listed on line N ...)"."""
    from test_export import _export, save_models

    out = tmp_path / "data"
    _export(save_models(tmp_path, reference_dir), out, num=2)
    image = next((out / "images").glob("*.png"))
    image.unlink()
    image.symlink_to("gone.png")  # inside the export, to nothing
    with pytest.raises(
        FileNotFoundError, match=r"is a broken symlink \(to gone\.png\) \(listed on"
    ):
        ExportedDataset(out)
