"""``sample``, ``fit`` and ``suggest`` take a PRESET first (or ``--preset NAME``), as
``preview`` and ``export`` do: ``dgan-data sample toyface-14 ...`` was refused with
"the following arguments are required: --generator"."""

from __future__ import annotations

import shutil

from test_cli_errors import run

from dgan_data import load_interpreter
from dgan_data.presets import resolve_preset_file

SAMPLE = ["--num", "2", "--seed", "5"]


def _folder_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.*"))}


def test_sample_with_a_preset_first_writes_what_generator_writes(capsys, tmp_path):
    code, _, err = run(
        capsys, "sample", "--generator", "toyface-14", *SAMPLE, "--out", str(tmp_path / "a")
    )
    assert code == 0, err
    code, out, err = run(capsys, "sample", "toyface-14", *SAMPLE, "--out", str(tmp_path / "b"))
    assert code == 0, err
    code, _, err = run(
        capsys, "sample", "--preset", "toyface-14", *SAMPLE, "--out", str(tmp_path / "c")
    )
    assert code == 0, err
    files = _folder_bytes(tmp_path / "a")
    assert "manifest.json" in files and len(files) >= 3
    assert _folder_bytes(tmp_path / "b") == files == _folder_bytes(tmp_path / "c")
    assert "cloth" in out  # the preset's classes, as with --generator


def test_without_preset_or_flags_the_error_names_both_ways(capsys, tmp_path):
    code, _, err = run(capsys, "sample", *SAMPLE, "--out", str(tmp_path / "a"))
    assert code == 2 and "give a PRESET, or --generator" in err
    code, _, err = run(capsys, "suggest", "--generator", "toyface-14", "--num", "1",
                       "--out", str(tmp_path / "b"))  # fmt: skip
    assert code == 2 and "give a PRESET, or both --generator and --interpreter" in err
    code, _, err = run(capsys, "sample", "toyface-14", "--preset", "car-20", *SAMPLE,
                       "--out", str(tmp_path / "c"))  # fmt: skip
    assert code == 2 and "differ" in err
    code, _, err = run(capsys, "sample", "toyface-14", "--generator", "toyface-14-wide",
                       *SAMPLE, "--out", str(tmp_path / "d"))  # fmt: skip
    assert code == 2 and "PRESET 'toyface-14' is not used when --generator is given" in err
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_suggest_takes_the_preset_for_both_files_and_a_flag_overrides_it(capsys, tmp_path):
    code, out, err = run(capsys, "suggest", "toyface-14", "--num", "1", "--pool", "4",
                         "--out", str(tmp_path / "next"))  # fmt: skip
    assert code == 0, err
    assert "wrote 1 image to annotate" in out
    missing = tmp_path / "nowhere.safetensors"
    code, _, err = run(capsys, "suggest", "toyface-14", "--interpreter", str(missing),
                       "--num", "1", "--pool", "4", "--out", str(tmp_path / "other"))  # fmt: skip
    assert code == 2 and str(missing) in err


def test_fit_with_a_preset_first(capsys, tmp_path):
    folder = tmp_path / "ann"
    shutil.copytree(resolve_preset_file("toyface-14", "interpreter").parent / "annotations", folder)
    out_file = tmp_path / "i.safetensors"
    code, _, err = run(
        capsys, "fit", "toyface-14", "--annotations", str(folder), "--num-models", "1",
        "--max-steps", "2", "--skip-validation", "--no-progress", "--out", str(out_file),
    )  # fmt: skip
    assert code == 0, err
    assert load_interpreter(out_file).num_models == 1
