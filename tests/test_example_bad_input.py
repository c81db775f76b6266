"""The toy scripts on bad input: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import pytest
from example_scripts import load_example

build_preset = load_example("toy/build_preset", "toy_build_preset")
diagnose = load_example("toy/diagnose", "toy_diagnose")
rebuild = load_example("toy/rebuild", "toy_rebuild")


def one_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, err)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--max-steps", "0"], ["--max-steps", "'0' must be >= 1"]),
        (["--num-models", "0"], ["--num-models"]),
        (["--num", "0"], ["--num"]),
        (["--class-balance", "2"], ["--class-balance must be in [0, 1]"]),
    ],
)
def test_build_preset_refuses_settings_at_parse_time(capsys, tmp_path, argv, words):
    with pytest.raises(SystemExit) as exc:
        build_preset.main(["--generator", "toyface-14", "--out", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    one_line(capsys.readouterr().err, "build_preset.py: error:", *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--generator", "missing.safetensors", ["missing.safetensors", "no such file"]),
        ("--annotator", "missing.safetensors", ["annotator files missing"]),
        ("--quality", "missing.json", ["missing.json"]),
    ],
)
def test_build_preset_names_a_missing_file_and_writes_nothing(
    capsys, tmp_path, option, value, words
):
    """The default --out is the package's own assets: a bad run must not touch them."""
    argv = ["--generator", "toyface-14", "--out", str(tmp_path / "o")]
    argv += [option, str(tmp_path / value)]
    assert build_preset.main(argv) == 2
    one_line(capsys.readouterr().err, "build_preset.py: error:", *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--preset", "no-such-preset"], ["--preset no-such-preset", "unknown preset"]),
        (["--lr", "-1"], ["--lr", "must be > 0"]),
        (["--lr", "0"], ["--lr", "must be > 0"]),
        (["--annotator", "{tmp}/a.safetensors"], ["a.json is not beside it"]),
    ],
)
def test_diagnose_refuses_before_making_its_folder(capsys, tmp_path, argv, words):
    (tmp_path / "a.safetensors").write_bytes(b"")
    argv = [a.format(tmp=tmp_path) for a in argv]
    with pytest.raises(SystemExit) as exc:
        diagnose.main(["--out", str(tmp_path / "out"), *argv])
    assert exc.value.code == 2
    one_line(capsys.readouterr().err, "diagnose.py: error:", *words)
    assert not (tmp_path / "out").exists()


def test_rebuild_refuses_a_work_path_that_is_a_file(capsys, tmp_path):
    work = tmp_path / "work"
    work.write_text("")
    with pytest.raises(SystemExit) as exc:
        rebuild.parse_args(["--work", str(work), "--dry-run"])
    assert exc.value.code == 2
    one_line(capsys.readouterr().err, "rebuild.py: error:", "exists and is not a folder")


def test_rebuild_reports_a_failed_step_in_one_line(capfd, tmp_path):
    """The step prints its own error; rebuild adds one line and exits with its code."""
    argv = ["--assets", str(tmp_path / "none"), "--parts", "preview", "--work", str(tmp_path)]
    assert rebuild.main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "no such file" in err
    assert err.strip().splitlines()[-1] == (
        "rebuild.py: error: part preview (dgan-data preview) exited with code 2"
    )


@pytest.mark.parametrize(
    ("script", "argv", "bad", "words"),
    [
        ("toy/train_gan", ["--steps", "1"], "file", "exists and is not a folder"),
        ("toy/build_preset", ["--generator", "g"], "file/sub", "file is a file, not a folder"),
        ("toy/diagnose", [], "file", "exists and is not a folder"),
        ("toy/train_annotator", ["--steps", "1"], "dir.safetensors", "is a folder"),
    ],
)
def test_an_out_that_cannot_be_written_is_refused_when_parsed(
    capsys, tmp_path, script, argv, bad, words
):
    """Before any training: train_gan crashed with a traceback, train_annotator after
    its whole schedule, build_preset with a raw errno."""
    module = load_example(script, "bad_out_" + script.replace("/", "_"))
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(SystemExit) as exc:
        module.main(["--out", str(tmp_path / bad), *argv])
    assert exc.value.code == 2
    one_line(capsys.readouterr().err, "argument --out:", words)
    assert (tmp_path / "file").read_text() == "mine"
    assert not any((tmp_path / "dir.safetensors").iterdir())
