"""Resume and option checks of the training examples: what cannot be continued or used
is refused before training, with one line naming the file or option."""

from __future__ import annotations

import argparse

import pytest
import torch
from example_scripts import load_example
from torch import nn

from dgan_data.cli.common import UsageError, device_name
from dgan_data.downstream.train import build_deeplab, train_segmentation
from dgan_data.toy import CLASS_NAMES

K = len(CLASS_NAMES)
BASE = ["--preset", "toyface-14", "--eval-toy-test", "4", "--max-steps", "4"]


@pytest.fixture(scope="module")
def deeplab():
    return load_example("train_deeplab")


def _parse_error(example, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        example.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 or err[0].startswith("usage:")
    return err[-1]


# ------------------------------------------------------------- --checkpoint-dir
def test_checkpoint_dir_that_is_a_file_is_refused_when_parsed(deeplab, tmp_path, capsys):
    """It was found only at the first write, after every training step."""
    a_file = tmp_path / "ckpt.txt"
    a_file.write_text("x")
    for bad in (a_file, a_file / "under"):
        line = _parse_error(deeplab, [*BASE, "--checkpoint-dir", str(bad)], capsys)
        assert "argument --checkpoint-dir" in line and str(a_file.name) in line
    args = deeplab.parse_args([*BASE, "--checkpoint-dir", str(tmp_path / "new" / "dir")])
    assert args.checkpoint_dir == tmp_path / "new" / "dir"


# ------------------------------------------------------------------- last.pt
def test_a_model_only_checkpoint_as_last_pt_is_refused_when_parsed(deeplab, tmp_path, capsys):
    """A step_*.pt copied to last.pt has a step but no optimiser: KeyError traceback."""
    torch.save({"step": 2, "model": {}}, tmp_path / "last.pt")
    argv = [*BASE, "--resume", "--checkpoint-dir", str(tmp_path)]
    line = _parse_error(deeplab, argv, capsys)
    assert "not a full training checkpoint (no optimizer, scaler, history)" in line
    assert "last.pt" in line


def _batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(2, 3, 32, 32, generator=g), torch.randint(0, K, (2, 32, 32)))] * 4


def test_resuming_another_model_names_last_pt(tmp_path):
    """Another --decoder-channels gave a 57-line size-mismatch traceback."""
    train_segmentation(
        build_deeplab(K, image_size=32, decoder_channels=32),
        _batches(),
        2,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        progress=False,
    )
    other = build_deeplab(K, image_size=32, decoder_channels=16)
    with pytest.raises(ValueError, match=r"last\.pt: its model does not fit this one") as exc:
        train_segmentation(other, _batches(), 4, checkpoint_dir=tmp_path, resume=True)
    assert "\n" not in str(exc.value)


def test_a_damaged_last_pt_is_a_value_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    model = nn.Sequential(nn.Conv2d(3, K, 1))
    with pytest.raises(ValueError, match=r"last\.pt: not a readable training checkpoint"):
        train_segmentation(model, _batches(), 2, checkpoint_dir=tmp_path, resume=True)


# ------------------------------------------------------------------- scores.pt
def test_scores_of_another_eval_set_are_refused_before_training(deeplab, tmp_path):
    """Mixed 10- and 12-image scores failed the five-fold protocol after all the steps,
    with no results written and scores.pt broken for every later resume."""
    first = deeplab.EvalScores(tmp_path, True, "toy test split, first 10 renders", 10)
    first.per_image[2] = torch.zeros(10, K, K)
    first.save()
    same = deeplab.EvalScores(tmp_path, True, "toy test split, first 10 renders", 10)
    same.load(2)
    assert list(same.per_image) == [2]
    other = deeplab.EvalScores(tmp_path, True, "toy test split, first 12 renders", 12)
    with pytest.raises(UsageError, match="holds scores on 'toy test split, first 10 renders'"):
        other.load(2)


def test_old_scores_files_are_checked_by_their_image_counts(deeplab, tmp_path):
    torch.save({"per_image": {2: torch.zeros(10, K, K)}, "val": {}}, tmp_path / "scores.pt")
    deeplab.EvalScores(tmp_path, True, "ten images", 10).load(2)
    with pytest.raises(UsageError, match=r"holds scores on \[10\] images"):
        deeplab.EvalScores(tmp_path, True, "twelve images", 12).load(2)


VAL = {"val_samples": 4, "seed": 0, "drop_uncertain": 0.1}


def test_holdout_scores_of_another_validation_set_are_refused(deeplab, tmp_path):
    """Checkpoints scored on 4 validation images were compared with one scored on 16."""
    first = deeplab.EvalScores(tmp_path, True, "ten images", 10, VAL)
    first.per_image[2] = torch.zeros(10, K, K)
    first.val[2] = torch.zeros(K, K)
    first.save()
    deeplab.EvalScores(tmp_path, True, "ten images", 10, dict(VAL)).load(2)  # the same
    other = deeplab.EvalScores(tmp_path, True, "ten images", 10, {**VAL, "val_samples": 16})
    wanted = r"on --val-samples 4 --seed 0 --drop-uncertain 0\.1, but this run validates on"
    with pytest.raises(UsageError, match=wanted + " --val-samples 16"):
        other.load(2)


def test_a_five_fold_run_resumed_as_holdout_is_refused(deeplab, tmp_path):
    """The holdout choice covered only the checkpoints scored after the resume."""
    first = deeplab.EvalScores(tmp_path, True, "ten images", 10)  # five-fold: no validation
    first.per_image[2] = torch.zeros(10, K, K)
    first.save()
    deeplab.EvalScores(tmp_path, True, "ten images", 10).load(2)  # five-fold again: fine
    holdout = deeplab.EvalScores(tmp_path, True, "ten images", 10, VAL)
    with pytest.raises(UsageError, match=r"checkpoints \[2\] scored without a validation set"):
        holdout.load(2)


def test_a_damaged_scores_file_is_a_usage_error(deeplab, tmp_path):
    (tmp_path / "scores.pt").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match=r"scores\.pt: not a scores file of this script"):
        deeplab.EvalScores(tmp_path, True, "ten images", 10).load(2)


# ------------------------------------------------------------ encoder weights
@pytest.mark.parametrize(
    "content", [b"just some text\n", b"PK\x03\x04 truncated zip"], ids=["text", "truncated"]
)
def test_unreadable_encoder_weights_name_the_file(tmp_path, content):
    path = tmp_path / "encoder.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"encoder\.pth: not a weights-only torch state dict"):
        build_deeplab(K, encoder_weights=path)


def test_a_pickled_object_as_encoder_weights_is_refused(tmp_path):
    path = tmp_path / "full_model.pth"
    torch.save(argparse.Namespace(weights=1), path)  # weights_only refuses it
    with pytest.raises(ValueError, match=r"full_model\.pth: not a weights-only"):
        build_deeplab(K, encoder_weights=path)


# ----------------------------------------------------------------- devices
def test_devices_that_this_machine_lacks_are_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(argparse.ArgumentTypeError, match="MPS is not available"):
        device_name("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(argparse.ArgumentTypeError, match="has 1 CUDA device"):
        device_name("cuda:3")
    assert device_name("cuda:0") == "cuda:0"


def test_lightning_example_turns_user_errors_into_one_line(lightning, monkeypatch, capsys):
    example = load_example("train_lightning")

    def refuse(*args, **kwargs):
        raise ValueError("device 'mps' asked for, but MPS is not available here")

    monkeypatch.setattr(example, "StreamDataModule", refuse)
    assert example.main(["--preset", "toyface-14", "--device", "cpu"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert err == [
        "train_lightning.py: error: device 'mps' asked for, but MPS is not available here"
    ]
