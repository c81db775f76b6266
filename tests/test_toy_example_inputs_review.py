"""Review of the toy example scripts' inputs: ``train_annotator.py --resume`` refuses a
checkpoint of other settings, a damaged one and one that records no settings before
anything is rendered; ``diagnose.py`` refuses an annotator or generator it cannot use
with one line before ``--out`` is made, whichever arms run; ``self_training.py`` refuses
samples whose labels do not fit their images or the toy classes, or whose images are not
in [0, 1], naming the file, before ``--out`` is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from example_scripts import assert_one_line, load_example

pytest.importorskip("segmentation_models_pytorch")

train_annotator = load_example("toy/train_annotator", "review_inputs_train_annotator")
diagnose = load_example("toy/diagnose", "review_inputs_diagnose")
self_training = load_example("toy/self_training", "review_inputs_self_training")

#: A seconds-long annotator run: 4 renders, batch 2, a checkpoint after every step.
TINY = ["--train-count", "4", "--test-count", "2", "--batch-size", "2", "--threads", "1"]


def exit_code(main, argv: list[str]) -> int | None:
    """What a script's ``main`` ends with: its return value or its SystemExit code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


# ------------------------------------------------------------ train_annotator.py --resume
def ckpt_of(out: Path) -> Path:
    """The checkpoint beside ``--out`` (the README's ``<out>.ckpt.pt``)."""
    return out.with_suffix(".ckpt.pt")


class _KilledError(Exception):
    """Stands for a run killed after its last checkpoint."""


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """``--out`` of a run of --steps 2 killed after step 1 (its checkpoint is at step 1)."""
    out = tmp_path_factory.mktemp("annotator") / "a.safetensors"

    def killed(*args, **kwargs):
        raise _KilledError

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_annotator, "evaluate_annotator", killed)
        with pytest.raises(_KilledError):
            train_annotator.main(["--out", str(out), "--steps", "2", "--ckpt-every", "1", *TINY])
    assert ckpt_of(out).is_file()
    return out


@pytest.fixture
def out_copy(interrupted, tmp_path) -> Path:
    """A copy of the interrupted run's checkpoint, to resume or spoil."""
    out = tmp_path / "a.safetensors"
    ckpt = ckpt_of(out)
    ckpt.write_bytes(ckpt_of(interrupted).read_bytes())
    return out


def refused_resume(out: Path, capsys, *argv: str) -> str:
    """The one line with which ``--resume`` and ``argv`` are refused (exit 2)."""
    with pytest.raises(SystemExit) as exc:
        train_annotator.parse_args(["--out", str(out), "--resume", *TINY, *argv])
    assert exc.value.code == 2
    ckpt = ckpt_of(out)
    return assert_one_line(capsys.readouterr().err, "train_annotator.py: error:", str(ckpt))


def test_the_checkpoint_records_the_run_settings(interrupted):
    ck = torch.load(ckpt_of(interrupted), weights_only=True)
    settings = json.loads(ck["settings"])
    assert ck["step"] == 1
    assert settings["steps"] == 2 and settings["seed"] == 0 and settings["world"] == "base"
    assert settings["train_count"] == 4 and settings["batch_size"] == 2


def test_a_resume_with_another_architecture_is_one_line(out_copy, capsys):
    line = refused_resume(out_copy, capsys, "--steps", "2", "--decoder-channels", "32", "16", "8")
    assert "--decoder-channels 32 16 8" in line and "--steps" not in line


def test_a_resume_with_other_settings_names_each_and_keeps_the_checkpoint(out_copy, capsys):
    """It trained nothing and wrote a .json claiming the new settings, then deleted the
    checkpoint."""
    line = refused_resume(out_copy, capsys, "--steps", "1", "--seed", "7", "--world", "wide")
    for words in ("--steps 1", "--seed 7", "--world wide", "--world base", "--seed 0"):
        assert words in line
    assert ckpt_of(out_copy).is_file()
    assert not out_copy.with_suffix(".json").exists()


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:1000]), ["not a checkpoint"]),
        (lambda path: torch.save(torch.zeros(3), path), ["holds a Tensor"]),
        (
            lambda path: torch.save(
                {k: v for k, v in torch.load(path, weights_only=True).items() if k != "settings"},
                path,
            ),
            ["recorded their run settings"],
        ),
    ],
    ids=["truncated", "foreign", "no-settings"],
)
def test_a_checkpoint_that_cannot_be_checked_is_one_line(out_copy, capsys, spoil, words):
    spoil(ckpt_of(out_copy))
    line = refused_resume(out_copy, capsys, "--steps", "2")
    for word in words:
        assert word in line


def test_a_resume_with_the_same_settings_finishes_the_run(out_copy):
    meta = train_annotator.main(["--out", str(out_copy), "--resume", "--steps", "2", *TINY])
    assert meta["training"]["steps"] == 2 and out_copy.is_file()
    assert not ckpt_of(out_copy).exists()


# ------------------------------------------------------------------------ diagnose.py
def test_diagnose_refuses_an_annotator_it_cannot_read_before_making_out(tmp_path, capsys):
    """A foreign .json beside the annotator was a traceback, --out already made, even for
    --arms F, which needs no annotator."""
    ann = tmp_path / "ann.safetensors"
    ann.write_bytes(b"junk")
    ann.with_suffix(".json").write_text("{}")
    out = tmp_path / "out"
    argv = ["--out", str(out), "--arms", "F", "--annotator", str(ann)]
    assert exit_code(diagnose.main, argv) == 2
    assert_one_line(capsys.readouterr().err, "diagnose.py: error:", "ann.json")
    assert not out.exists()


@pytest.mark.parametrize("kind", ["junk", "16px"])
def test_diagnose_refuses_a_generator_it_cannot_use_before_making_out(tmp_path, capsys, kind):
    """A junk file (CheckpointError) or a generator the preset's interpreter does not fit."""
    gen = tmp_path / "gen.safetensors"
    if kind == "junk":
        gen.write_bytes(b"junk")
    else:
        train_gan = load_example("toy/train_gan", "review_inputs_train_gan")
        train_gan.build_generator(16).save(gen)
    out = tmp_path / "out"
    argv = ["--out", str(out), "--arms", "F", "--generator", str(gen)]
    assert exit_code(diagnose.main, argv) == 2
    # both files named: either may be the wrong one
    words = [str(gen)] if kind == "junk" else ["interpreter", f"does not match the generator {gen}"]
    assert_one_line(capsys.readouterr().err, "diagnose.py: error:", *words)
    assert not out.exists()


# -------------------------------------------------------------------- self_training.py
def _samples(path: Path, images: torch.Tensor, labels: torch.Tensor | None) -> Path:
    torch.save({"images": images} if labels is None else {"images": images, "labels": labels}, path)
    return path


def _parse(data: Path, evals: Path, out: Path) -> list[str]:
    return ["--data", str(data), "--eval", str(evals), "--out", str(out), "--steps", "1"]


@pytest.mark.parametrize(
    ("images", "labels", "words"),
    [
        (torch.rand(4, 3, 8, 8), torch.zeros(4, 4, 4, dtype=torch.long), ["differ"]),
        (torch.rand(4, 3, 8, 8), torch.full((4, 8, 8), 99), ["class id 99"]),
        (torch.rand(4, 3, 8, 8), torch.full((4, 8, 8), -1), ["class id -1"]),
        (torch.rand(4, 3, 8, 8) * 255, torch.zeros(4, 8, 8, dtype=torch.long), ["[0, 1]"]),
        (torch.rand(4, 3, 8, 8), torch.zeros(4, 8, 8), ["integer class ids"]),
    ],
    ids=["other-size", "id-99", "id-minus-1", "0..255-floats", "float-labels"],
)
def test_self_training_refuses_samples_that_do_not_fit_before_making_out(
    tmp_path, capsys, images, labels, words
):
    data = _samples(tmp_path / "data.pt", images, labels)
    evals = _samples(tmp_path / "eval.pt", torch.rand(2, 3, 8, 8), None)
    out = tmp_path / "out"
    assert exit_code(self_training.main, _parse(data, evals, out)) == 2
    assert_one_line(capsys.readouterr().err, "self_training.py: error:", f"--data {data}", *words)
    assert not out.exists()
    # the same rule for --eval (whose labels are optional)
    good = _samples(tmp_path / "good.pt", torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8).long())
    assert exit_code(self_training.main, _parse(good, data, out)) == 2
    assert_one_line(capsys.readouterr().err, f"--eval {data}", *words)
    assert not out.exists()


def test_self_training_takes_ignored_pixels_and_uint8_images(tmp_path):
    labels = torch.randint(0, 14, (2, 8, 8))
    labels[:, 0] = 255
    images = (torch.rand(2, 3, 8, 8) * 255).to(torch.uint8)
    data = self_training.load_samples(_samples(tmp_path / "d.pt", images, labels), True)
    assert data["images"].dtype == torch.float32
    assert torch.equal(data["images"], images.float() / 255)
    # the interpreter's ignored pixels are left out of its score (they were a ValueError)
    reference = labels.masked_fill(labels == 255, 3)
    assert self_training.agreement(labels, reference)["miou"] == 1.0
