"""Preset messages and ``inspect`` as a review followed them:

- ``inspect PRESET`` was refused when a folder of that name sat in the current folder
  (running it inside the cache is the natural way to meet this);
- the "missing files" advice could not be followed when the cache root is a file;
- a preset named only for the interpreter loaded a file of other classes in silence.
(The fit command it prints names the preset, quoted: ``tests/test_presets.py``.)
"""

from __future__ import annotations

import json

import pytest
from test_cli_errors import run

from dgan_data import Labeler
from dgan_data.presets import Preset, PresetFilesMissing, load_interpreter, resolve_preset_file
from dgan_data.presets import preset as preset_module


def test_inspect_a_preset_beside_a_folder_of_its_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toyface-14").mkdir()
    code, out, err = run(capsys, "inspect", "toyface-14", "--json")
    assert code == 0, err
    assert json.loads(out)["preset"] == "toyface-14"
    (tmp_path / "other").mkdir()  # a folder that is no preset is still refused
    code, _, err = run(capsys, "inspect", "other")
    assert code == 2 and "is a folder without manifest.json or dataset.json" in err


def test_a_cache_root_that_is_a_file_is_named(tmp_path, monkeypatch):
    home = tmp_path / "homefile"
    home.write_text("")
    monkeypatch.setenv("DGAN_DATA_HOME", str(home))
    with pytest.raises(PresetFilesMissing, match=f"{home} is a file, not a folder, so "
                       "nothing can be put there") as info:  # fmt: skip
        resolve_preset_file("car-20", "generator")
    # the advice that follows can be followed: no bare "Put it in" the blocked folder
    assert "Put it in" not in str(info.value)
    assert f"move it away, then put the file in {home / 'car-20'}" in str(info.value)
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))  # absent: no such line
    with pytest.raises(PresetFilesMissing) as info:
        resolve_preset_file("car-20", "generator")
    assert "is a file, not a folder" not in str(info.value)


def test_a_preset_named_only_for_the_interpreter_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))
    three = Preset(name="three-classes", class_names=("background", "thing", "other"),
                   num_classes=3, label_resolution=(64, 64), image_resolution=(64, 64),
                   architecture="stylegan2", source="the test")  # fmt: skip
    monkeypatch.setitem(preset_module._REGISTRY, three.name, three)
    folder = tmp_path / "cache" / three.name
    folder.mkdir(parents=True)
    toy = resolve_preset_file("toyface-14", "interpreter")  # 14 classes
    (folder / "interpreter.safetensors").write_bytes(toy.read_bytes())
    with pytest.raises(ValueError, match="has 14 classes where the preset names 3"):
        load_interpreter(three.name)
    with pytest.raises(ValueError, match="has 14 classes where the preset names 3"):
        Labeler.from_sources(generator="toyface-14", interpreter=three.name)
    assert load_interpreter(toy).num_classes == 14  # the file itself, by path: its own
