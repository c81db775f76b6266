"""Review fixes: a manifest's ignore_index other than 255 (read and dropped: its pixels
were trained as a class), blank or repeated class names in an interpreter file's header
(refused without naming the file, passed by inspect), builtin_dir naming the package
folder, fit(palette=...) (a raw "multiple values for keyword" TypeError), preset_dir
with a trailing newline, and fit --out shadowed by the package's own interpreter."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import save_file
from test_cli_errors import run

import dgan_data
from dgan_data import Interpreter
from dgan_data.annotations import AnnotationError, Annotations
from dgan_data.interpreter.io import InterpreterFileError
from dgan_data.presets import load_generator
from dgan_data.presets.preset import get_preset, preset_dir

ASSETS = Path(dgan_data.__file__).parent / "toy" / "assets"
PACKAGE = Path(dgan_data.__file__).resolve().parent


def _annotations(tmp_path: Path, **manifest_fields: object) -> Path:
    """A copy of the toy annotations with ``manifest_fields`` set in its manifest."""
    folder = tmp_path / "ann"
    shutil.copytree(ASSETS / "annotations", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(manifest_fields)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# ------------------------------------------------------------ 1. ignore_index
@pytest.mark.parametrize("value", [0, 1, 254])
def test_manifest_ignore_index_other_than_255_is_refused(tmp_path, value):
    folder = _annotations(tmp_path, ignore_index=value)
    with pytest.raises(AnnotationError, match=rf"manifest.json: ignore_index {value} .*255"):
        Annotations.load(folder)


def test_manifest_ignore_index_refused_by_fit_with_exit_2(tmp_path, capsys):
    folder = _annotations(tmp_path, ignore_index=0)
    out = tmp_path / "i.safetensors"
    code, _, err = run(
        capsys, "fit", "--generator", "toyface-14", "--annotations", str(folder),
        "--out", str(out), "--max-steps", "2",
    )  # fmt: skip
    assert code == 2 and "ignore_index 0" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("value", [255, None])
def test_manifest_ignore_index_255_or_null_still_loads(tmp_path, value):
    assert len(Annotations.load(_annotations(tmp_path, ignore_index=value))) > 0


# -------------------------------------------- 2. class names in the file header
def _with_class_names(tmp_path: Path, names: list[str]) -> Path:
    """The toy interpreter with its header's class_names replaced by ``names``."""
    src = ASSETS / "interpreter.safetensors"
    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta = json.loads(header["interpreter"])
    meta["class_names"] = names
    header["interpreter"] = json.dumps(meta)
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata=header)
    return path


@pytest.mark.parametrize("blank_or_twice", ["background", " "])
def test_interpreter_header_class_names_checked_naming_the_file(tmp_path, capsys, blank_or_twice):
    names = list(get_preset("toyface-14").class_names)
    names[1] = blank_or_twice
    path = _with_class_names(tmp_path, names)
    with pytest.raises(InterpreterFileError, match=r"bad\.safetensors.*class_names"):
        Interpreter.load(path)
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 2 and "bad.safetensors" in err and "class_names" in err


# ------------------------------------------------------------- 3. builtin_dir
@pytest.mark.parametrize("builtin_dir", [Path(""), ".", "toy/..", PACKAGE, str(PACKAGE)])
def test_builtin_dir_naming_the_package_folder_is_refused(builtin_dir):
    with pytest.raises(ValueError, match="builtin_dir"):
        dataclasses.replace(get_preset("toyface-14"), builtin_dir=builtin_dir)


def test_builtin_dir_inside_the_package_is_accepted():
    preset = dataclasses.replace(get_preset("toyface-14"), builtin_dir="toy/assets")
    assert preset.search_dirs()[0] == PACKAGE / "toy" / "assets"


# -------------------------------------------------------- 4. fit's own kwargs
@pytest.mark.parametrize(
    "kwargs",
    [{"palette": None}, {"class_names": ["a"]}, {"crop": None}, {"output_size": (8, 8)},
     {"fingerprint": "x"}],
)  # fmt: skip
def test_fit_refuses_what_it_takes_from_annotations_and_generator(kwargs):
    G = load_generator("toyface-14")
    ann = Annotations.load(ASSETS / "annotations")
    (name,) = kwargs
    with pytest.raises(TypeError, match=rf"^Interpreter.fit takes no {name}=: .*come from"):
        Interpreter.fit(G, ann, num_models=1, max_steps=2, **kwargs)


# -------------------------------------------------------------- 5. preset_dir
@pytest.mark.parametrize("name", ["a\n", "toyface-14\n"])
def test_preset_dir_refuses_a_trailing_newline(name):
    with pytest.raises(ValueError, match="not a valid preset name"):
        preset_dir(name)


# ---------------------------------------------- 6. fit --out shadowed in the cache
def test_fit_out_in_the_cache_shadowed_by_the_package_file_is_refused(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "home"))
    out = tmp_path / "home" / "toyface-14" / "interpreter.safetensors"
    out.parent.mkdir(parents=True)
    code, _, err = run(
        capsys, "fit", "--generator", "toyface-14", "--annotations", str(ASSETS / "annotations"),
        "--out", str(out), "--max-steps", "2",
    )  # fmt: skip
    assert code == 2, err
    assert str(ASSETS / "interpreter.safetensors") in err and "Traceback" not in err
    assert not out.exists()
