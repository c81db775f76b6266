"""A mistyped file or preset name gets the close names that do exist: ``generator.safetensor``
(no such file) and ``toyface-14x`` (neither a file nor a preset) said only what was wrong."""

from __future__ import annotations

import pytest

from dgan_data import AnnotationError, Annotations
from dgan_data.cli import main
from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError
from dgan_data.export import verify_export
from dgan_data.presets import UnknownPresetError, resolve_source


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "generator.safetensors").write_bytes(b"not read")
    (tmp_path / "interpreter.safetensors").write_bytes(b"not read")
    (tmp_path / "generator.safetensors.d").mkdir()  # a folder is not offered
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_file_name_with_a_typo_gets_the_close_file(folder):
    with pytest.raises(FileNotFoundError) as err:
        resolve_source("generator.safetensor", "generator")
    assert str(err.value) == (
        "generator.safetensor: no such file. Did you mean 'generator.safetensors'?"
    )


def test_a_path_with_a_typo_gets_the_close_path(folder):
    with pytest.raises(FileNotFoundError) as err:
        resolve_source(str(folder / "generatr.safetensors"), "generator")
    assert f"Did you mean '{folder / 'generator.safetensors'}'?" in str(err.value)
    assert "generator.safetensors.d" not in str(err.value)


def test_a_name_that_is_neither_gets_close_presets_and_files(folder):
    with pytest.raises(UnknownPresetError, match=r"Did you mean 'toyface-14'"):
        resolve_source("toyface-14x", "generator")
    with pytest.raises(UnknownPresetError, match=r"Did you mean 'interpreter\.safetensors'\?"):
        resolve_source("interpreter", "interpreter")


def test_nothing_close_means_no_guess(folder):
    with pytest.raises(FileNotFoundError) as err:
        resolve_source("weights/zzz.pt", "generator")
    assert str(err.value) == "weights/zzz.pt: no such file"


def test_the_command_line_shows_the_guess(folder, capsys):
    assert main(["inspect", "generatr.safetensors"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "dgan-data inspect: error: generatr.safetensors: no such file. "
        "Did you mean 'generator.safetensors'?"
    ]


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_mistyped_command_gets_the_close_command(capsys):
    err = _cli_error(["expor"], capsys)
    assert err.startswith("dgan-data: error: argument COMMAND: invalid choice: 'expor'")
    assert err.endswith(". Did you mean 'export'? (see dgan-data --help)")


def test_a_mistyped_option_gets_the_close_option_of_its_command(capsys):
    err = _cli_error(["demo", "--stepz", "3"], capsys)
    assert err == (
        "dgan-data demo: error: unrecognized arguments: --stepz 3. Did you mean '--steps'? "
        "(see dgan-data demo --help)"
    )
    err = _cli_error(["export", "toyface-14", "--out", "x", "--nmu=3"], capsys)
    assert "unrecognized arguments: --nmu=3. Did you mean '--num'?" in err
    err = _cli_error(["presets", "--zzz"], capsys)  # nothing close: no guess
    assert err == (
        "dgan-data presets: error: unrecognized arguments: --zzz (see dgan-data presets --help)"
    )


def test_the_same_suffix_alone_is_not_close(folder):
    with pytest.raises(FileNotFoundError) as err:
        resolve_source("decoder.safetensors", "generator")
    assert str(err.value) == "decoder.safetensors: no such file"


def test_folders_with_a_typo_get_the_close_folder(tmp_path, monkeypatch):
    for name in ("annotations", "real", "export"):
        (tmp_path / name).mkdir()
    (tmp_path / "exports.txt").write_text("a file is not offered for a folder")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        AnnotationError, match=r"no such annotation folder\. Did you mean 'annotations'\?"
    ):
        Annotations.load("annotatons")
    with pytest.raises(LabeledFolderError, match=r"does not exist\. Did you mean 'real'\?"):
        LabeledFolder("rael", num_classes=3)
    with pytest.raises(FileNotFoundError) as err:
        verify_export("exprt")
    assert str(err.value).endswith("(not a dgan_data export). Did you mean 'export'?")
    with pytest.raises(FileNotFoundError) as err:
        verify_export("nothing")
    assert str(err.value) == "nothing/dataset.json: no such file (not a dgan_data export)"
