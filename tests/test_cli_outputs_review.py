"""Review fixes of where the commands write, and of options that would be ignored:
``sample --out`` named an export (or any folder of yours) and added its samples there,
after which ``inspect`` called the export an annotation folder; a dataset of another
kind at ``--out`` is now refused by every command that writes a folder, and ``sample``
refuses a non-empty folder without ``manifest.json``. ``--device`` was accepted and
ignored where no model runs (``export --merge``/``--verify``, ``preview --export``,
``preview --annotations`` without ``--generator``): it is refused like the other model
options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_errors import one_line_error, run
from test_cli_review import _recorded_export

import dgan_data
from dgan_data.cli import data as cli_data

TOY_ANNOTATIONS = Path(dgan_data.__file__).parent / "toy" / "assets" / "annotations"


def _annotation_folder(tmp_path: Path) -> Path:
    """The top of an annotation folder as the commands tell it: a manifest and images/."""
    ann = tmp_path / "ann"
    (ann / "images").mkdir(parents=True)
    (ann / "manifest.json").write_text(json.dumps({"samples": []}))
    return ann


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------- a dataset at --out
def test_sample_into_an_export_is_refused_and_writes_nothing(capsys, tmp_path):
    out = _recorded_export(tmp_path)
    (out / "images").mkdir()
    (out / "images" / "000000.png").write_bytes(b"an exported sample")
    before = _listing(out)
    code, _, err = run(capsys, "sample", "toyface-14", "--num", "1", "--out", str(out))
    assert code == 2
    one_line_error(err, str(out), "is an export")
    assert _listing(out) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "toyface-14", "--num", "1"],
        ["suggest", "toyface-14", "--num", "1"],
        ["merge-annotations", "{ann}", "{ann}"],
        ["demo", "--quick"],
    ],
)
def test_commands_writing_a_folder_refuse_an_export_at_out(capsys, tmp_path, argv):
    out = _recorded_export(tmp_path)
    ann = tmp_path / "other"
    argv = [a.replace("{ann}", str(ann)) for a in argv]
    code, _, err = run(capsys, *argv, "--out", str(out))
    assert code == 2
    one_line_error(err, str(out), "is an export")
    assert _listing(out) == ["dataset.json"]


@pytest.mark.parametrize(
    "argv",
    [["export", "toyface-14", "--num", "2", "--batch-size", "1"], ["demo", "--quick"]],
)
def test_commands_writing_other_folders_refuse_an_annotation_folder_at_out(capsys, tmp_path, argv):
    ann = _annotation_folder(tmp_path)
    code, _, err = run(capsys, *argv, "--out", str(ann))
    assert code == 2
    one_line_error(err, str(ann), "is an annotation folder")
    assert _listing(ann) == ["images", "manifest.json"]


def test_sample_refuses_a_non_empty_folder_without_a_manifest(capsys, tmp_path):
    junk = tmp_path / "junk"
    (junk / "images").mkdir(parents=True)
    (junk / "images" / "photo.txt").write_text("mine")
    code, _, err = run(capsys, "sample", "toyface-14", "--num", "1", "--out", str(junk))
    assert code == 2
    one_line_error(err, str(junk), "manifest.json")
    assert _listing(junk) == ["images", "images/photo.txt"]


def test_sample_still_writes_into_an_empty_folder_and_resumes_its_own(capsys, tmp_path):
    out = tmp_path / "ann"
    out.mkdir()
    argv = ("sample", "toyface-14", "--num", "1", "--out", str(out))
    assert run(capsys, *argv)[0] == 0
    code, printed, _ = run(capsys, *argv[:3], "2", *argv[4:])
    assert code == 0
    assert "1 new, kept 1 existing" in printed


# ---------------------------------------------- --device where no model runs
@pytest.mark.parametrize("mode", ["--merge", "--verify"])
def test_merge_and_verify_refuse_device(capsys, tmp_path, mode):
    out = _recorded_export(tmp_path)
    code, _, err = run(capsys, "export", mode, "--out", str(out), "--device", "cpu")
    assert code == 2
    one_line_error(err, "--device")


@pytest.mark.parametrize("option", ["--export", "--annotations"])
def test_preview_of_a_folder_refuses_device(capsys, tmp_path, option):
    folder = _recorded_export(tmp_path) if option == "--export" else TOY_ANNOTATIONS
    png = tmp_path / "p.png"
    code, _, err = run(capsys, "preview", option, str(folder), "--device", "cpu", "--out", str(png))
    assert code == 2
    one_line_error(err, "--device")
    assert not png.exists()


def test_preview_annotations_with_a_generator_passes_device_on(capsys, tmp_path, monkeypatch):
    seen = {}

    def fake(folder, out, num, generator=None, device=None):
        seen.update(generator=generator, device=device)
        return out, ["00000"]

    monkeypatch.setattr(cli_data, "preview_annotations", fake)
    png = tmp_path / "p.png"
    argv = ("preview", "--annotations", str(TOY_ANNOTATIONS), "--out", str(png))
    code, _, err = run(capsys, *argv, "--generator", "toyface-14", "--device", "cpu")
    assert code == 0, err
    assert seen == {"generator": "toyface-14", "device": "cpu"}
    assert run(capsys, *argv)[0] == 0  # the default device is no option given
