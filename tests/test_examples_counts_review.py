"""examples/stream_quickstart.py and examples/train_lightning.py: one of --generator and
--interpreter takes the other from the toy preset, and counts beyond the stream's limits
are refused when parsed (one line naming the options, exit 2), not after loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_scripts import assert_one_line, load_example

import dgan_data
from dgan_data.conventions import MAX_BATCH

ASSETS = Path(dgan_data.__file__).parent / "toy" / "assets"
TOO_MANY = str(10**19)  # more than sys.maxsize, the stream's samples_per_epoch limit

quickstart = load_example("stream_quickstart", "counts_stream_quickstart")


def refused_when_parsed(parse, argv: list[str], capsys, *words: str) -> str:
    """The one stderr line with which ``parse(argv)`` exits 2."""
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    return assert_one_line(capsys.readouterr().err, "error:", *words)


# ------------------------------------------------------------- bug 1: one of the two files
@pytest.mark.parametrize("given", ["generator", "interpreter"])
def test_quickstart_takes_the_missing_file_from_the_toy_preset(given, capsys):
    """Only --interpreter (or --generator) failed: "needs a preset name, or both ..."."""
    argv = [f"--{given}", str(ASSETS / f"{given}.safetensors")]
    assert quickstart.main([*argv, "--batches", "1", "--batch-size", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "batch 0: images (2, 3, 64, 64)" in out
    assert "class histogram over 1 batches" in out


@pytest.mark.parametrize(
    ("given", "missing"), [("generator", "interpreter"), ("interpreter", "generator")]
)
def test_quickstart_without_the_toy_preset_names_the_options(given, missing, monkeypatch, capsys):
    monkeypatch.setattr(quickstart, "_presets", lambda: [])  # toyface-14 not installed
    argv = [f"--{given}", str(ASSETS / f"{given}.safetensors"), "--device", "cpu"]
    assert quickstart.main(argv) == 2
    line = assert_one_line(
        capsys.readouterr().err, "stream_quickstart.py: error:", f"--{given}", f"--{missing}"
    )
    assert "--preset" in line and "generator=" not in line, line


# ------------------------------------------------------------- bug 2: counts when parsed
def test_quickstart_refuses_a_batch_size_above_max_batch(capsys):
    too_big = str(MAX_BATCH + 1)
    refused_when_parsed(
        quickstart.parse_args, ["--batch-size", too_big], capsys, "--batch-size", too_big
    )
    assert quickstart.parse_args(["--batch-size", str(MAX_BATCH)]).batch_size == MAX_BATCH


def test_quickstart_refuses_more_samples_than_the_stream_holds(capsys):
    line = refused_when_parsed(
        quickstart.parse_args, ["--batches", TOO_MANY], capsys, "--batches", "--batch-size"
    )
    assert "samples_per_epoch" not in line, line


@pytest.fixture
def train_lightning(lightning):
    return load_example("train_lightning", "counts_train_lightning")


def test_train_lightning_refuses_a_batch_size_above_max_batch(train_lightning, capsys):
    too_big = str(MAX_BATCH + 1)
    refused_when_parsed(
        train_lightning.parse_args, ["--batch-size", too_big], capsys, "--batch-size", too_big
    )


def test_train_lightning_refuses_more_samples_than_the_stream_holds(train_lightning, capsys):
    line = refused_when_parsed(
        train_lightning.parse_args,
        ["--steps-per-epoch", TOO_MANY],
        capsys,
        "train_lightning.py: error:",
        "--steps-per-epoch",
        "--batch-size",
    )
    assert "samples_per_epoch" not in line, line
