"""Paths the file system cannot hold or reach: an output named longer than the file
system allows was a raw ``OSError`` traceback (exit 1) from every command that writes,
and an annotation folder whose ``masks/`` (or ``images/``, ``latents/``) is a file read
as "no mask drawn yet" (``inspect`` exit 0, ``--skip-unannotated`` left every sample
out) or "masks/00000.png: missing", never naming the file in the way."""

from __future__ import annotations

import shutil

import pytest
from test_annotations import TinyGenerator, problems_of, sampled_folder
from test_cli_errors import one_line_error, run

from dgan_data import Annotations
from dgan_data.annotations import AnnotationError
from dgan_data.fileio import output_path_problem

LONG = "a" * 300


@pytest.mark.parametrize(
    "argv",
    [
        ["sample", "toyface-14", "--num", "1", "--out", "{long}"],
        ["merge-annotations", "{tmp}/ann", "--out", "{long}"],
        ["export", "toyface-14", "--num", "1", "--out", "{long}"],
        ["export", "--verify", "--out", "{long}"],
        ["preview", "toyface-14", "--num", "1", "--out", "{long}.png"],
        ["fit", "toyface-14", "--annotations", "{tmp}/ann", "--out", "{long}.safetensors"],
        ["suggest", "toyface-14", "--num", "1", "--out", "{long}"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_an_output_name_too_long_is_one_line_and_exit_2(capsys, tmp_path, argv):
    long = str(tmp_path / LONG)
    argv = [a.format(tmp=tmp_path, long=long) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    one_line_error(err, "has a name of 3", "more than the 255 the file system allows")


def test_a_whole_path_too_long_is_named(capsys, tmp_path):
    deep = tmp_path / ("b/" * 2100) / "i.safetensors"
    code, _, err = run(capsys, "fit", "toyface-14", "--annotations", "ann", "--out", str(deep))
    assert code == 2
    one_line_error(err, "bytes long, more than the")


def test_the_library_check_names_the_long_part(tmp_path):
    from dgan_data.fileio import name_length_problem

    assert name_length_problem(tmp_path / "ok" / "g.safetensors") is None
    problem = output_path_problem(tmp_path / LONG / "g.safetensors")
    assert problem is not None and "300 bytes" in problem and "255" in problem
    assert output_path_problem(tmp_path / LONG, folder=True) == problem


@pytest.fixture
def folder(tmp_path):
    return sampled_folder(TinyGenerator(), tmp_path / "ann", num=2)


def _make_a_file(folder, name: str) -> None:
    shutil.rmtree(folder / name)
    (folder / name).write_text("a file where the folder should be")


@pytest.mark.parametrize("sub", ["masks", "images", "latents"])
def test_a_sample_folder_that_is_a_file_is_named(folder, sub):
    _make_a_file(folder, sub)
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)
    assert f"{folder / sub} is a file, not a folder" in problems_of(err)


def test_skip_unannotated_does_not_take_a_masks_file_for_no_masks(folder):
    _make_a_file(folder, "masks")
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder, skip_unannotated=True)
    text = problems_of(err)
    assert "masks is a file, not a folder" in text and "no mask yet" not in text


def test_inspect_says_masks_is_a_file(capsys, folder):
    _make_a_file(folder, "masks")
    code, out, err = run(capsys, "inspect", str(folder))
    assert code == 2, out
    assert "no mask drawn yet" not in out
    assert f"{folder / 'masks'} is a file, not a folder" in err and "Traceback" not in err
