"""Where the CLI writes, and what it says about paths of the wrong kind: an output may not
be a file or a sample folder of an annotation folder or an export (``preview --out
ann/masks/00000.png`` replaced a mask), ``fit --out`` does not replace an interpreter
without ``--overwrite``, an empty path is not the current folder, and the messages of
``sample --num``, ``import-masks`` and ``fit --out .safetensors`` name the real fault."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from dgan_data.annotations import AnnotationError, MaskImportError, import_masks
from dgan_data.annotations.format import MAX_SAMPLES
from dgan_data.cli import main
from dgan_data.cli.common import interpreter_output, output_file, output_folder

ASSETS = Path(__file__).resolve().parents[1] / "dgan_data" / "toy" / "assets"


def _cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse errors exit 2 from parse_args
        rc = exc.code
    return rc, capsys.readouterr().err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ann(tmp_path) -> Path:
    folder = tmp_path / "ann"
    shutil.copytree(ASSETS / "annotations", folder)
    return folder


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "exp"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    (folder / "images" / "000000.png").write_bytes(b"not replaced")
    (folder / "dataset.json").write_text("{}")
    return folder


def test_preview_refuses_to_replace_a_mask_of_an_annotation_folder(capsys, ann):
    mask = sorted((ann / "masks").glob("*.png"))[0]
    before = _digest(mask)
    rc, err = _cli(capsys, "preview", "toyface-14", "--num", "1", "--out", str(mask))
    assert rc == 2
    assert "masks/ of the annotation folder" in err and str(ann) in err, err
    assert _digest(mask) == before


@pytest.mark.parametrize("rel", ["images/new.png", "masks/sub/new.png", "latents/x.png"])
def test_no_new_file_inside_the_sample_folders_of_an_annotation_folder(ann, rel):
    with pytest.raises(argparse.ArgumentTypeError, match="of the annotation folder"):
        output_file(str(ann / rel))


@pytest.mark.parametrize(
    "rel", ["dataset.json", "index.jsonl", "index.s0.jsonl", "images/000000.png", "masks/a.png"]
)
def test_no_output_over_the_files_of_an_export(export, rel):
    with pytest.raises(argparse.ArgumentTypeError, match="of the export"):
        output_file(str(export / rel))


def test_json_results_are_not_written_over_a_manifest(capsys, ann):
    before = _digest(ann / "manifest.json")
    rc, err = _cli(
        capsys, "preview", "toyface-14", "--num", "1", "--out", str(ann / "manifest.json")
    )
    assert rc == 2 and "is a file of the annotation folder" in err, err
    with pytest.raises(argparse.ArgumentTypeError, match="is a file of the annotation folder"):
        output_file(str(ann / "manifest.json"))
    assert _digest(ann / "manifest.json") == before


def test_folder_outputs_inside_a_dataset_are_refused(capsys, ann, export):
    rc, err = _cli(capsys, "sample", "--generator", "toyface-14", "--num", "1", "--out",
                   str(ann / "masks" / "more"))  # fmt: skip
    assert rc == 2 and "is inside masks/ of the annotation folder" in err, err
    with pytest.raises(argparse.ArgumentTypeError, match="is images/ of the export"):
        output_folder(str(export / "images"))


def test_a_folder_link_into_a_dataset_is_seen_through(tmp_path, ann):
    link = tmp_path / "link"
    link.symlink_to(ann / "masks", target_is_directory=True)
    with pytest.raises(argparse.ArgumentTypeError, match="masks/ of the annotation folder"):
        output_file(str(link / "grid.png"))


def test_files_of_ones_own_beside_a_dataset_are_allowed(tmp_path, ann, export):
    """An interpreter saved next to its annotations, or a grid next to an export, is not
    part of either (only their own files and sample folders are)."""
    assert output_file(str(ann / "grid.png")) == ann / "grid.png"
    assert interpreter_output(str(ann / "i.safetensors")) == ann / "i.safetensors"
    assert output_file(str(export / "grid.png")) == export / "grid.png"
    assert output_folder(str(tmp_path / "images")) == tmp_path / "images"  # no dataset here


def test_a_folder_named_like_a_dataset_part_is_allowed_elsewhere(tmp_path):
    """A stray ``manifest.json`` (a web app's) without sample folders is not an
    annotation folder."""
    (tmp_path / "manifest.json").write_text("{}")
    assert output_file(str(tmp_path / "manifest2.json")) == tmp_path / "manifest2.json"
    (tmp_path / "images").mkdir()
    with pytest.raises(argparse.ArgumentTypeError):
        output_file(str(tmp_path / "images" / "a.png"))


def test_fit_does_not_replace_an_interpreter_without_overwrite(capsys, tmp_path):
    out = tmp_path / "i.safetensors"
    shutil.copyfile(ASSETS / "interpreter.safetensors", out)
    before = _digest(out)
    rc, err = _cli(
        capsys, "fit", "--generator", "toyface-14", "--annotations", str(ASSETS / "annotations"),
        "--out", str(out), "--num-models", "1", "--max-steps", "1", "--skip-validation",
    )  # fmt: skip
    assert rc == 2 and "exists; give --overwrite" in err, err
    assert _digest(out) == before


def test_fit_overwrite_replaces_it(capsys, tmp_path):
    out = tmp_path / "i.safetensors"
    out.write_bytes(b"an older interpreter")
    rc, err = _cli(
        capsys, "fit", "--generator", "toyface-14", "--annotations", str(ASSETS / "annotations"),
        "--out", str(out), "--num-models", "1", "--max-steps", "1", "--skip-validation",
        "--overwrite",
    )  # fmt: skip
    assert rc == 0, err
    assert out.read_bytes()[:8] != b"an older"
    from dgan_data.interpreter import Interpreter

    assert Interpreter.load(out).num_models == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "--generator", "toyface-14", "--num", "1", "--out", ""],
        ["preview", "toyface-14", "--num", "1", "--out", ""],
        ["fit", "--generator", "toyface-14", "--annotations", "a", "--out", " "],
    ],
)
def test_an_empty_output_path_is_refused(capsys, tmp_path, monkeypatch, argv):
    """``Path("")`` is the current folder: ``sample --out ""`` wrote into it."""
    monkeypatch.chdir(tmp_path)
    rc, err = _cli(capsys, *argv)
    assert rc == 2 and "an empty path" in err, err
    assert not any(tmp_path.iterdir())


def test_an_interpreter_needs_a_name_before_its_suffix():
    with pytest.raises(argparse.ArgumentTypeError, match=r"give a name before \.safetensors"):
        interpreter_output(".safetensors")


def test_sample_num_is_bounded_and_named(capsys, tmp_path):
    rc, err = _cli(capsys, "sample", "--generator", "toyface-14", "--num", "1" + "0" * 30,
                   "--out", str(tmp_path / "s"))  # fmt: skip
    assert rc == 2 and "--num" in err and f"at most {MAX_SAMPLES}" in err, err
    assert "seed" not in err
    assert not (tmp_path / "s").exists()


def test_sample_library_names_num_beside_the_seed(tmp_path):
    from dgan_data import load_generator
    from dgan_data.annotations import sample_annotation_folder

    G = load_generator("toyface-14", device="cpu")
    with pytest.raises(ValueError, match=f"1..{MAX_SAMPLES}"):
        sample_annotation_folder(G, MAX_SAMPLES + 1, tmp_path / "a")
    with pytest.raises(ValueError, match="with num 5"):
        sample_annotation_folder(G, 5, tmp_path / "b", seed=2**63 - 2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_resample_with_other_seeds_counts_only_the_problems(tmp_path):
    from dgan_data import load_generator
    from dgan_data.annotations import sample_annotation_folder

    G = load_generator("toyface-14", device="cpu")
    sample_annotation_folder(G, 2, tmp_path / "s")
    with pytest.raises(AnnotationError) as err:
        sample_annotation_folder(G, 2, tmp_path / "s", seed=5)
    assert len(err.value.problems) == 2
    assert all("has seed" in p for p in err.value.problems)
    assert "use a new folder" in err.value.advice
    assert "2 problems" in str(err.value)


def test_coco_given_a_folder_says_so(tmp_path, ann):
    (tmp_path / "coco").mkdir()
    with pytest.raises(MaskImportError, match="is a folder; --format coco reads one COCO JSON"):
        import_masks(tmp_path / "coco", ann, format="coco")


@pytest.mark.parametrize("fmt", ["png", "voc", "cvat-mask"])
def test_folder_formats_given_a_file_say_so(tmp_path, ann, fmt):
    (tmp_path / "f.json").write_text(json.dumps({}))
    with pytest.raises(MaskImportError, match=f"is a file; --format {fmt} reads a folder"):
        import_masks(tmp_path / "f.json", ann, format=fmt)


def test_annotations_given_a_file_say_so(capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    (tmp_path / "masks").mkdir()
    rc, err = _cli(capsys, "import-masks", "--format", "png", str(tmp_path / "masks"),
                   "--annotations", str(tmp_path / "afile"))  # fmt: skip
    assert rc == 2 and "afile: is a file, not a folder" in err and "Errno" not in err, err
    from dgan_data.annotations import Annotations

    with pytest.raises(AnnotationError, match="is a file, not an annotation folder"):
        Annotations.load(tmp_path / "afile")


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--generator", "toyface-14", "--annotations", "", "--out", "i.safetensors"],
        ["export", "toyface-14", "--num", "2", "--out", ""],
        ["merge-annotations", "", "--out", "m"],
        ["import-masks", "--format", "png", "", "--annotations", "a"],
    ],
)
def test_an_empty_input_path_is_refused(capsys, tmp_path, monkeypatch, argv):
    """``--annotations ""`` read the current folder (``export --out ""`` exported into it)."""
    monkeypatch.chdir(tmp_path)
    rc, err = _cli(capsys, *argv)
    assert rc == 2 and "an empty path" in err, err
    assert not any(tmp_path.iterdir())


def test_merge_refuses_a_folder_given_twice(capsys, tmp_path, ann, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = _cli(capsys, "merge-annotations", "ann", "./ann/", "--out", "m")
    assert rc == 2 and "ann: given twice; give each folder once" in err, err
    assert not (tmp_path / "m").exists()


def test_export_out_inside_a_dataset_is_refused(capsys, ann, export):
    from dgan_data.cli.common import export_folder

    rc, err = _cli(capsys, "export", "toyface-14", "--num", "2", "--out", str(ann / "masks" / "x"))
    assert rc == 2 and "is inside masks/ of the annotation folder" in err, err
    assert not (ann / "masks" / "x").exists()
    with pytest.raises(argparse.ArgumentTypeError, match="of the export"):
        export_folder(str(export / "images" / "more"))
    assert export_folder(str(export)) == export  # an export to resume is its own root
