"""An output folder that is a symlink whose target is gone is named, not "File exists".

``mkdir -p`` fails on such a link with ``[Errno 17] File exists``, and every check
before it called ``path.exists()``, which is False for it: ``suggest --out`` printed
that raw error, ``export --out`` "cannot create the export folder (File exists)",
``write_labeled_folder`` and ``Annotations.save`` a bare FileExistsError. The
parse-time check (``fileio.output_path_problem``), the library's folder creation
(``fileio.make_folder``, also under every atomic write) and the annotation folder's
check now say what is there and what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dgan_data import AnnotationError, Annotations
from dgan_data.cli import main
from dgan_data.downstream.realdata import write_labeled_folder
from dgan_data.fileio import atomic_write_bytes, make_folder, output_path_problem

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def broken_link(path: Path) -> Path:
    path.symlink_to(path.parent / f"gone-{path.name}")
    return path


def named(path: Path) -> str:
    return f"is a broken symlink (to {path.parent / f'gone-{path.name}'})"


def test_output_path_problem_names_a_broken_link_at_or_above_the_path(tmp_path):
    link = broken_link(tmp_path / "out")
    assert output_path_problem(link, folder=True) == (
        f"{named(link)}: remove the link or name another folder"
    )
    assert output_path_problem(link / "sub", folder=True) == f"{link} {named(link)}, not a folder"
    assert output_path_problem(link / "f.png") == f"{link} {named(link)}, not a folder"
    (tmp_path / "to-folder").symlink_to(tmp_path, target_is_directory=True)
    assert output_path_problem(tmp_path / "to-folder", folder=True) is None
    assert output_path_problem(tmp_path / "to-folder" / "new" / "f.png") is None


def test_make_folder_creates_parents_and_names_what_is_in_the_way(tmp_path):
    made = make_folder(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    link = broken_link(tmp_path / "out")
    with pytest.raises(FileExistsError, match="cannot create the export folder: ") as err:
        make_folder(link, "export folder")
    assert named(link) in str(err.value) and "Errno" not in str(err.value)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(OSError, match="file is a file, not a folder"):
        make_folder(tmp_path / "file" / "sub")
    assert (tmp_path / "file").read_text() == "mine"


def test_an_atomic_write_under_a_broken_link_names_it(tmp_path):
    link = broken_link(tmp_path / "out")
    with pytest.raises(FileExistsError) as err:
        atomic_write_bytes(link / "x.bin", b"data")
    assert f"{link}: cannot create the folder: {named(link)}: remove the link" in str(err.value)
    assert not os.path.lexists(tmp_path / "gone-out")  # nothing made behind the link


def test_annotations_save_names_a_broken_link(tmp_path):
    annotations = Annotations.from_arrays(
        masks=torch.zeros(2, 4, 4, dtype=torch.uint8), class_names=["a", "b"], seeds=[1, 2]
    )
    link = broken_link(tmp_path / "ann")
    with pytest.raises(AnnotationError, match="remove the link or name another folder") as err:
        annotations.save(link)
    assert named(link) in str(err.value)
    root = tmp_path / "inside"
    root.mkdir()
    (root / "masks").symlink_to("gone-masks")  # inside the folder, to nothing
    with pytest.raises(AnnotationError, match=r"masks: is a broken symlink \(to gone-masks\)"):
        annotations.save(root)


def test_write_labeled_folder_names_a_broken_link(tmp_path):
    link = broken_link(tmp_path / "real")
    with pytest.raises(FileExistsError) as err:
        write_labeled_folder(
            link, torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), ["a", "b"]
        )
    assert f"{link} {named(link)}, not a folder" in str(err.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--out", "OUT"],
        ["suggest", "toyface-14", "--num", "2", "--pool", "8", "--out", "OUT"],
        ["export", "toyface-14", "--num", "2", "--out", "OUT"],
    ],
)
def test_the_commands_name_a_broken_link_as_out(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    broken_link(tmp_path / "OUT")
    try:
        rc = main(argv)
    except SystemExit as exc:  # refused when the arguments are parsed
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"is a broken symlink (to {tmp_path / 'gone-OUT'})" in err, err
    assert "remove the link or name another folder" in err, err
    assert "Errno" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]
