"""A generator file given as the interpreter, an interpreter file as the generator, or an
annotation or export folder as either: the error names what the file or folder is and
where it goes. They said only "without a dgan_data generator config", "not a dgan_data
interpreter (its header has no format ...)" and "is a folder, not a checkpoint file"."""

from __future__ import annotations

import pytest
from test_cli_errors import one_line_error, run

from dgan_data import DatasetGANStream, export_dataset, load_generator, load_interpreter
from dgan_data.generators import CheckpointError
from dgan_data.presets import resolve_preset_file

GENERATOR = resolve_preset_file("toyface-14", "generator")
INTERPRETER = resolve_preset_file("toyface-14", "interpreter")
ANNOTATIONS = INTERPRETER.parent / "annotations"


def test_an_interpreter_file_given_as_the_generator():
    with pytest.raises(CheckpointError, match="is a dgan_data interpreter file, not a generator"):
        load_generator(INTERPRETER)


def test_a_generator_file_given_as_the_interpreter():
    with pytest.raises(ValueError, match="is a dgan_data generator file, not an interpreter"):
        load_interpreter(GENERATOR)
    stream = DatasetGANStream(generator=INTERPRETER, interpreter=GENERATOR, samples_per_epoch=1)
    with pytest.raises(ValueError, match=r"not a generator|not an interpreter"):
        next(iter(stream))


def test_the_cli_names_both_swaps_on_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "preview", "--generator", str(INTERPRETER), "--interpreter",
                       str(GENERATOR), "--num", "1", "--out", str(tmp_path / "g.png"))  # fmt: skip
    assert code == 2
    one_line_error(err, "not a generator", "--interpreter")


def test_an_annotation_folder_given_as_a_model(capsys, tmp_path):
    argv = ["preview", "--generator", "toyface-14", "--interpreter", str(ANNOTATIONS),
            "--num", "1", "--out", str(tmp_path / "g.png")]  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 2
    one_line_error(err, "is a folder, not a checkpoint file", "it is an annotation folder",
                   "dgan-data fit --annotations")  # fmt: skip


def test_an_export_folder_given_as_a_model(capsys, tmp_path):
    out = tmp_path / "data"
    export_dataset("toyface-14", 2, out, progress=False)
    code, _, err = run(capsys, "inspect", str(out / "images"))  # a plain folder: no hint
    assert code == 2 and "it is an" not in err
    with pytest.raises(CheckpointError, match=r"it is an export folder.*ExportedDataset"):
        load_generator(str(out))
