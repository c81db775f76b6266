"""``holdout_scores`` / ``dgan-data fit --holdout K``: how well an interpreter fitted on
the other annotated images labels K held-out ones, per class. Before, the only number
was the fit's accuracy on its own training pixels (0.99 on the toy preset)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from test_cli_errors import run

from dgan_data import Annotations, Interpreter, Labeler, holdout_scores, load_generator
from dgan_data.presets import resolve_preset_file

FIT = {"num_models": 1, "max_steps": 30, "progress": False}


@pytest.fixture(scope="module")
def toy():
    folder = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
    return load_generator("toyface-14"), Annotations.load(folder)


def test_take_keeps_each_field_of_the_chosen_samples(toy):
    _, ann = toy
    part = ann.take([5, 2])
    assert part.ids == [ann.ids[5], ann.ids[2]] and part.seeds == [ann.seeds[5], ann.seeds[2]]
    assert torch.equal(part.masks, ann.masks[[5, 2]])
    assert torch.equal(part.images, ann.images[[5, 2]])
    assert part.class_names == ann.class_names and part.truncation_psi == ann.truncation_psi
    with_w = dataclasses.replace(ann, seeds=None, w=torch.randn(len(ann), 4, 8))
    assert torch.equal(with_w.take([5, 2]).w, with_w.w[[5, 2]])
    with pytest.raises(IndexError, match="sample index 16 is out of range for 16 samples"):
        ann.take([0, 16])


def test_scores_match_a_fit_and_labels_made_by_hand(toy):
    G, ann = toy
    scores = holdout_scores(G, ann, 4, seed=3, **FIT)
    held = [ann.ids.index(i) for i in scores["held_out"]]
    assert len(held) == 4 and scores["trained_on"] == 12
    train = [i for i in range(len(ann)) if i not in held]
    # the same fit, then the held-out images labeled from their seeds (another path)
    interp = Interpreter.fit(G, ann.take(train), seed=3, **FIT)
    labeler = Labeler(G, interp, truncation_psi=ann.truncation_psi)
    labels = labeler.label([ann.seeds[i] for i in held]).masks.numpy()
    target = ann.masks[held].numpy()
    for k, iou in enumerate(scores["iou"]):
        inter = np.sum((labels == k) & (target == k))
        union = np.sum((labels == k) | (target == k))
        if union == 0:
            assert iou is None
        else:
            assert iou == pytest.approx(inter / union)
        assert scores["support"][k] == np.sum(target == k)
    zero = [ann.class_names[k] for k, v in enumerate(scores["iou"])
            if v == 0.0 and scores["support"][k] > 0]  # fmt: skip
    assert scores["missed"] == zero


def test_the_seed_draws_the_held_out_images(toy):
    G, ann = toy
    a = holdout_scores(G, ann, 3, seed=0, **FIT)["held_out"]
    assert holdout_scores(G, ann, 3, seed=0, **FIT)["held_out"] == a
    assert holdout_scores(G, ann, 3, seed=1, **FIT)["held_out"] != a


def test_bad_input_is_refused(toy):
    G, ann = toy
    with pytest.raises(ValueError, match="holdout"):
        holdout_scores(G, ann, 16, **FIT)
    with pytest.raises(ValueError, match="at least 2 annotated images"):
        holdout_scores(G, ann.take([0]), 1, **FIT)
    with pytest.raises(TypeError, match="must be an Annotations"):
        holdout_scores(G, "ann/", 1, **FIT)


def _fit_argv(tmp_path, max_steps: int) -> tuple[list[str], object]:
    """``dgan-data fit`` on a copy of the preset's annotations, a short fit."""
    folder = tmp_path / "ann"
    shutil.copytree(resolve_preset_file("toyface-14", "interpreter").parent / "annotations",
                    folder)  # fmt: skip
    argv = ["fit", "toyface-14", "--annotations", str(folder), "--num-models", "1",
            "--max-steps", str(max_steps), "--skip-validation", "--no-progress"]  # fmt: skip
    return argv, folder


def test_fit_holdout_prints_the_table_then_fits_on_all(capsys, tmp_path):
    argv, folder = _fit_argv(tmp_path, 30)
    code, out, err = run(capsys, *argv, "--holdout", "4", "--out", str(tmp_path / "i.safetensors"))
    assert code == 0, err
    assert "held out 4 of 16 annotated images" in out and "now fitting on all 16 images" in out
    assert all(name in out for name in Annotations.load(folder).class_names)
    final = Interpreter.load(tmp_path / "i.safetensors")
    assert final.training_info["num_images"] == 16
    code, _, err = run(capsys, *argv, "--holdout", "16", "--out", str(tmp_path / "j.safetensors"))
    assert code == 2 and "hold out fewer" in err
    assert not (tmp_path / "j.safetensors").exists()


def test_rounds_hold_each_image_out_once_and_pool_the_counts(toy):
    G, ann = toy
    one = holdout_scores(G, ann, 4, seed=2, **FIT)
    four = holdout_scores(G, ann, 4, rounds=4, seed=2, **FIT)
    assert sorted(four["held_out"]) == sorted(ann.ids)  # every image once
    assert four["held_out"][:4] == one["held_out"]  # round 0 is the single draw
    assert four["round_miou"][0] == pytest.approx(one["miou"])
    assert len(four["round_miou"]) == 4 and four["rounds"] == 4
    # pooled over all rounds: every labelled pixel of every mask is counted once
    assert sum(four["support"]) == int((ann.masks != 255).sum())
    with pytest.raises(ValueError, match="at most 4 disjoint rounds of 4"):
        holdout_scores(G, ann, 4, rounds=5, **FIT)


def test_fit_holdout_rounds_cli(capsys, tmp_path):
    argv, _ = _fit_argv(tmp_path, 10)
    code, out, err = run(capsys, *argv, "--holdout", "8", "--holdout-rounds", "2",
                         "--out", str(tmp_path / "i.safetensors"))  # fmt: skip
    assert code == 0, err
    assert "held out 8 of 16 annotated images in each of 2 rounds (16 images in all" in out
    for extra, words in ((["--holdout", "8", "--holdout-rounds", "3"], "at most 2 disjoint"),
                         (["--holdout-rounds", "2"], "needs --holdout K")):  # fmt: skip
        code, _, err = run(capsys, *argv, *extra, "--out", str(tmp_path / "j.safetensors"))
        assert code == 2 and words in err
    assert not (tmp_path / "j.safetensors").exists()
