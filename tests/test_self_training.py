"""One round of self-training on saved stream samples (examples/toy/self_training.py)."""

from __future__ import annotations

import json

import pytest
import torch
from example_scripts import load_example

self_training = load_example("toy/self_training", "toy_self_training")


class _LeftHeavy(torch.nn.Module):
    """Class 1's logit is the column index, class 0's its negative: not mirror-symmetric."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = torch.arange(x.shape[-1], dtype=x.dtype).expand(x.shape[0], x.shape[-2], -1)
        cols = cols - (x.shape[-1] - 1) / 2 + x[:, 0] * 0.1
        return torch.stack([-cols, cols], 1)


def test_overlap_counts_agreement_and_who_is_right():
    interp = torch.tensor([[0, 1, 2, 3]])
    student = torch.tensor([[0, 1, 1, 0]])
    reference = torch.tensor([[0, 2, 1, 3]])
    shares = self_training.overlap(interp, student, reference)
    assert shares["agree"] == 0.5
    assert shares["right_where_agree"] == 0.5  # pixel 0 right, pixel 1 wrong in both
    assert shares["wrong_in_both"] == 0.25
    assert shares["interpreter_right_where_differ"] == 0.5  # pixel 3
    assert shares["student_right_where_differ"] == 0.5  # pixel 2


def test_predict_flip_averages_the_mirrored_logits():
    net = _LeftHeavy()
    images = torch.rand(3, 3, 4, 6)
    plain = self_training.predict(net, images, flip=False)
    flipped = self_training.predict(net, images, flip=True)
    # plain: the right half is class 1
    assert plain[:, :, 3:].eq(1).all() and plain[:, :, :3].eq(0).all()
    # with the mirror, the column term cancels and only the image term decides
    logits = net(images)
    expected = ((logits + net(images.flip(-1)).flip(-1)) / 2).argmax(1)
    assert torch.equal(flipped, expected)
    assert not torch.equal(flipped, plain)
    assert net.training  # predict leaves the module in the mode it found


def _cache(path, n: int, labels: bool) -> None:
    g = torch.Generator().manual_seed(n)
    data = {"images": torch.rand(n, 3, 64, 64, generator=g)}
    if labels:
        data["labels"] = torch.randint(0, 14, (n, 64, 64), generator=g)
    torch.save(data, path)


def test_runs_both_rounds_and_resumes(tmp_path):
    _cache(tmp_path / "s.pt", 8, labels=True)
    _cache(tmp_path / "e.pt", 4, labels=True)
    argv = [
        "--data", str(tmp_path / "s.pt"), "--eval", str(tmp_path / "e.pt"),
        "--out", str(tmp_path / "out"), "--steps", "2", "--batch-size", "4",
        "--test-count", "4", "--no-progress",
    ]  # fmt: skip
    assert self_training.main(argv) == 0
    first = json.loads((tmp_path / "out" / "self_training.json").read_text())
    assert (tmp_path / "out" / "student0.safetensors").is_file()
    for key in ("student0", "student1_flip"):
        assert 0.0 <= first[key]["miou"] <= 1.0
    for mode in ("plain", "flip"):
        for where in ("stream_images", "fresh"):
            assert 0.0 <= first[f"student0_{mode}_vs_annotator"][where]["miou"] <= 1.0
    shares = first["student0_vs_interpreter"]
    assert 0.0 <= shares["agree"] <= 1.0
    assert shares["wrong_in_both"] <= shares["agree"]
    # random labels agree with the annotator far less than a trained labeler would
    assert first["interpreter_vs_annotator"]["stream_images"] < 0.2
    # a rerun trains nothing: the students' records (and their timings) are unchanged
    assert self_training.main(argv) == 0
    second = json.loads((tmp_path / "out" / "self_training.json").read_text())
    for key in ("student0", "student1_flip"):
        assert second[key] == first[key]
    # the labels student 0 gives are the same after reloading its weights
    assert second["student0_flip_vs_annotator"] == first["student0_flip_vs_annotator"]


def test_refuses_missing_files_and_caches_without_labels(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        self_training.parse_args(
            ["--data", str(tmp_path / "none.pt"), "--eval", str(tmp_path / "none.pt"), "--out", "o"]
        )
    assert exc.value.code == 2
    assert "--data" in capsys.readouterr().err
    _cache(tmp_path / "nolabels.pt", 2, labels=False)
    with pytest.raises(SystemExit, match=r"nolabels\.pt: not a diagnose\.py cache"):
        self_training.load_samples(tmp_path / "nolabels.pt", need_labels=True)
    with pytest.raises(SystemExit) as exc:
        self_training.parse_args(
            ["--data", str(tmp_path / "nolabels.pt"), "--eval", str(tmp_path / "nolabels.pt"),
             "--out", "o", "--steps", "0"]
        )  # fmt: skip
    assert exc.value.code == 2
