"""A PRESET on the command line is the preset: a file of that name in the working
directory does not take its place, and fit never writes over the generator it reads
when that generator is given as a preset."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_cli_errors import one_line_error, run

from dgan_data import get_preset
from dgan_data.annotations import Annotations
from dgan_data.cli import UsageError
from dgan_data.cli.models import check_fit_frame
from dgan_data.presets import preset as preset_module
from dgan_data.presets import resolve_preset_file, resolve_source
from dgan_data.presets.resolve import PresetName


@pytest.fixture
def stray_file(tmp_path, monkeypatch):
    """A working directory holding a file named like the toy preset."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toyface-14").write_text("not a checkpoint")
    return tmp_path


@pytest.mark.parametrize("argv", [["--preset", "toyface-14"], ["toyface-14"]])
def test_sample_takes_the_preset_not_a_file_of_its_name(stray_file, capsys, argv):
    code, _, err = run(capsys, "sample", *argv, "--num", "1", "--out", "ann")
    assert code == 0, err
    manifest = json.loads((stray_file / "ann" / "manifest.json").read_text())
    assert manifest["class_names"] == list(get_preset("toyface-14").class_names)


def test_a_flag_naming_the_file_still_reads_the_file(stray_file, capsys):
    # --generator resolves as everywhere else: an existing file wins (here, not a checkpoint)
    argv = ["--generator", "toyface-14", "--classes", "a,b", "--num", "1", "--out", "a"]
    code, _, err = run(capsys, "sample", *argv)
    assert code == 2
    one_line_error(err, "toyface-14", "checkpoint")
    assert not (stray_file / "a").exists()


def test_a_preset_name_resolves_to_the_preset_file_beside_a_stray_file(stray_file):
    path, name = resolve_source(PresetName("toyface-14"), "generator")
    assert name == "toyface-14"
    assert path == resolve_preset_file("toyface-14", "generator")
    assert resolve_source("toyface-14", "generator") == (Path("toyface-14"), None)  # a plain str


@pytest.fixture
def preset_in_a_folder(tmp_path, monkeypatch):
    """A copy of the toy preset whose files live in a folder of this test."""
    folder = tmp_path / "preset"
    folder.mkdir()
    shutil.copy(resolve_preset_file("toyface-14", "generator"), folder)
    monkeypatch.setattr(preset_module, "_REGISTRY", dict(preset_module._REGISTRY))
    preset_module.register_preset(
        replace(get_preset("toyface-14"), name="toyface-copy", builtin_dir=str(folder))
    )
    return folder


def test_fit_refuses_to_write_over_a_preset_generator(preset_in_a_folder, capsys, tmp_path):
    generator = preset_in_a_folder / "generator.safetensors"
    before = generator.read_bytes()
    argv = ["--annotations", str(tmp_path / "no-folder"), "--out", str(generator), "--overwrite"]
    code, _, err = run(capsys, "fit", "toyface-copy", *argv)
    assert code == 2
    one_line_error(err, "is the generator being read")
    assert generator.read_bytes() == before


def test_fit_names_the_first_class_that_differs_from_the_preset():
    preset = get_preset("toyface-14")
    names = list(preset.class_names)
    names[13] = "clothes"
    ann = Annotations.from_arrays(
        masks=np.zeros((1, *preset.label_resolution), np.uint8), class_names=names, seeds=[0]
    )
    own = preset.expected_paths("interpreter")[0]
    with pytest.raises(UsageError, match="class 13 is 'clothes' where the preset has 'cloth'"):
        check_fit_frame(ann, preset, Path("ann"), own)
