"""Active annotation: selection rules, determinism, merge validation, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_stream import random_interpreter, tiny_generator

import dgan_data.toy
from dgan_data.annotations import AnnotationError, Annotations, sample_annotation_folder
from dgan_data.cli import main
from dgan_data.labeler import Labeler
from dgan_data.seeds import derive_seed
from dgan_data.suggest import (
    MIN_CLASS_PIXELS,
    candidate_seeds,
    suggest_annotations,
    write_suggestions,
)

NAMES = ["background", "a", "b", "c", "d"]


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G, num_classes=5)
    interp.class_names = list(NAMES)
    return Labeler(G, interp, device="cpu")


def pool_presence(labeler: Labeler, pool: int, seed: int = 0) -> torch.Tensor:
    """Which classes each pool candidate holds, recomputed from the labeler's masks."""
    seeds = [derive_seed(seed, 0x5E6, i) for i in range(pool)]
    masks = labeler.label(seeds).masks
    counts = torch.stack([torch.bincount(m.flatten(), minlength=5)[:5] for m in masks])
    return counts >= MIN_CLASS_PIXELS


def pool_mass(labeler: Labeler, pool: int, seed: int = 0) -> torch.Tensor:
    """Each pool candidate's expected pixels per class, from the ensemble's probabilities."""
    seeds = [derive_seed(seed, 0x5E6, i) for i in range(pool)]
    return mass_of(labeler, *labeler.synthesize(seeds))


def reference_probs(labeler: Labeler, img: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
    """(B, K, H, W) ensemble mean probabilities by the interpreter's reference path."""
    maps = labeler.interpreter.prediction_maps(feats, img)
    return labeler.interpreter.naive_predict(maps, labeler.frame, return_probs=True).probs


def mass_of(labeler: Labeler, img: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
    """Expected pixels per class by the interpreter's reference path (plain MLPs)."""
    return reference_probs(labeler, img, feats).sum((2, 3))


def pool_peak(labeler: Labeler, pool: int, seed: int = 0) -> torch.Tensor:
    """Each pool candidate's mean of its 4 highest pixel probabilities per class, sorted
    out pixel by pixel from the reference probabilities."""
    seeds = [derive_seed(seed, 0x5E6, i) for i in range(pool)]
    probs = reference_probs(labeler, *labeler.synthesize(seeds))
    B, K = probs.shape[:2]
    peak = torch.zeros(B, K)
    for b in range(B):
        for k in range(K):
            values = sorted(probs[b, k].flatten().tolist(), reverse=True)
            peak[b, k] = sum(values[:MIN_CLASS_PIXELS]) / MIN_CLASS_PIXELS
    return peak


@pytest.mark.parametrize("coverage_by", ["labels", "mass", "peak"])
def test_coverage_picks_the_candidate_with_the_most_missing_classes(labeler, coverage_by):
    present = pool_presence(labeler, 40)
    if coverage_by == "labels":
        held = present.double()
    elif coverage_by == "mass":
        held = (pool_mass(labeler, 40) / MIN_CLASS_PIXELS).clamp(max=1).double()
    else:
        held = pool_peak(labeler, 40).double()
    report = suggest_annotations(
        labeler, 1, pool=40, weights=(0.0, 1.0, 0.0, 0.0), coverage_by=coverage_by
    )
    pick = report.suggestions[0]
    assert report.coverage_by == coverage_by
    # with no annotation yet every class is missing: the pick holds the most classes
    assert float(held[pick.pool_index].sum()) == pytest.approx(float(held.sum(1).max()), rel=1e-4)
    assert pick.classes == [NAMES[k] for k in range(5) if present[pick.pool_index, k]]


def test_class_mass_is_the_sum_of_the_ensembles_mean_probabilities(labeler):
    seeds = [3, 4, 5]
    img, feats = labeler.synthesize(seeds)
    plain = labeler.label_synthesized(img, feats, seeds)
    batch = labeler.label_synthesized(img, feats, seeds, class_mass=True)
    assert plain.class_mass is None
    assert batch.class_mass.shape == (3, 5)
    torch.testing.assert_close(batch.class_mass, mass_of(labeler, img, feats), rtol=1e-4, atol=1e-3)
    H, W = batch.masks.shape[1:]
    torch.testing.assert_close(batch.class_mass.sum(1), torch.full((3,), float(H * W)))
    assert torch.equal(batch.masks, plain.masks)
    picked = batch.select(torch.tensor([2, 0]))
    assert torch.equal(picked.class_mass, batch.class_mass[[2, 0]])
    assert picked.class_peak is None


def test_class_peak_is_the_mean_of_each_classs_highest_probabilities(labeler):
    seeds = [derive_seed(0, 0x5E6, i) for i in range(3)]
    img, feats = labeler.synthesize(seeds)
    batch = labeler.label_synthesized(img, feats, seeds, class_peak=MIN_CLASS_PIXELS)
    assert batch.class_mass is None
    torch.testing.assert_close(batch.class_peak, pool_peak(labeler, 3), rtol=1e-4, atol=1e-4)
    assert torch.equal(batch.select(torch.tensor([1])).class_peak, batch.class_peak[[1]])
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="class_peak"):
            labeler.label_synthesized(img, feats, seeds, class_peak=bad)


def test_peak_coverage_does_not_count_probability_spread_thin(labeler, monkeypatch):
    """Class "d": candidate 2 spreads 0.1 over 60 pixels (6 expected pixels, but no pixel
    where "d" is likely), candidate 7 has 4 pixels at 0.9. By mass 2 holds "d" fully and
    is picked; by peak it holds it at 0.1 and 7 is picked."""
    real = labeler.label_synthesized
    diffuse, sure = derive_seed(0, 0x5E6, 2), derive_seed(0, 0x5E6, 7)

    def shaped_class_d(img, feats, seeds, *, class_mass=False, class_peak=0):
        batch = real(img, feats, seeds, class_mass=class_mass, class_peak=class_peak)
        batch.masks.zero_()
        probs = torch.zeros(len(seeds), 5, 16, 16)
        probs[:, 0] = 1.0
        for i, s in enumerate(seeds):
            if s == diffuse:
                probs[i, 4].view(-1)[:60] = 0.1
            elif s == sure:
                probs[i, 4].view(-1)[:4] = 0.9
        probs[:, 0] -= probs[:, 4]
        if class_mass:
            batch.class_mass = probs.sum((2, 3))
        if class_peak:
            batch.class_peak = probs.flatten(2).topk(class_peak, dim=2).values.mean(2)
        return batch

    monkeypatch.setattr(labeler, "label_synthesized", shaped_class_d)
    weights = (0.0, 1.0, 0.0, 0.0)
    by_mass = suggest_annotations(labeler, 1, pool=12, weights=weights, coverage_by="mass")
    by_peak = suggest_annotations(labeler, 1, pool=12, weights=weights, coverage_by="peak")
    assert by_mass.suggestions[0].pool_index == 2
    assert by_peak.suggestions[0].pool_index == 7
    assert by_peak.coverage_by == "peak"
    assert by_peak.suggestions[0].new_classes == ["background", "d"]
    assert by_peak.class_images_expected_after["d"] == pytest.approx(0.9)
    assert by_mass.class_images_expected_after["d"] == pytest.approx(1.0)


def test_mass_coverage_finds_a_class_the_labels_never_show(labeler, monkeypatch):
    """A class no candidate's labels hold, but one candidate gives 6 expected pixels:
    coverage by mass picks that candidate, coverage by labels cannot tell them apart."""
    real = labeler.label_synthesized

    def quiet_class_d(img, feats, seeds, *, class_mass=False, class_peak=0):
        batch = real(img, feats, seeds, class_mass=class_mass, class_peak=class_peak)
        batch.masks.zero_()  # every candidate: background, "a".."c" 1 px each, no "d"
        batch.masks[:, 0, :4] = torch.arange(4)
        if class_mass:
            mass = torch.zeros_like(batch.class_mass)
            mass[:, :4] = 1.0
            mass[:, 4] = 0.5
            mass[seeds.index(derive_seed(0, 0x5E6, 7)), 4] = 6.0
            batch.class_mass = mass
        return batch

    monkeypatch.setattr(labeler, "label_synthesized", quiet_class_d)
    by_mass = suggest_annotations(
        labeler, 1, pool=12, weights=(0.0, 1.0, 0.0, 0.0), coverage_by="mass"
    )
    assert by_mass.suggestions[0].pool_index == 7
    assert by_mass.suggestions[0].new_classes == ["d"]
    assert by_mass.class_images_expected_after["d"] == pytest.approx(1.0)
    assert by_mass.class_image_counts_after["d"] == 0  # the labels still hold no "d"
    by_labels = suggest_annotations(
        labeler, 1, pool=12, weights=(0.0, 1.0, 0.0, 0.0), coverage_by="labels"
    )
    assert by_labels.suggestions[0].pool_index == 0  # all tie: the lower index
    assert by_labels.suggestions[0].new_classes == ["background"]  # no "d"


def test_unknown_coverage_by_is_refused(labeler):
    with pytest.raises(ValueError, match="coverage_by"):
        suggest_annotations(labeler, 1, pool=4, coverage_by="pixels")


def test_existing_annotations_steer_coverage_to_their_missing_class(labeler):
    present = pool_presence(labeler, 40)
    rare = int(present.float().mean(0).argmin())  # the class fewest candidates hold
    masks = torch.zeros(3, 16, 16, dtype=torch.uint8)
    for i, k in enumerate(c for c in range(5) if c != rare):  # 3 images, all but `rare`
        if i < 3:
            masks[:, :, 4 * i : 4 * i + 4] = k
    masks[:, :, 12:] = [k for k in range(5) if k != rare][-1]
    existing = Annotations.from_arrays(masks=masks.numpy(), class_names=NAMES, seeds=[1, 2, 3])
    report = suggest_annotations(
        labeler, 2, pool=40, existing=existing, weights=(0.0, 1.0, 0.0, 0.0)
    )
    if present[:, rare].any():
        assert NAMES[rare] in report.suggestions[0].new_classes
    assert report.class_image_counts_before[NAMES[rare]] == 0


def test_same_seed_same_choice_and_reasons(labeler):
    a = suggest_annotations(labeler, 3, pool=24, seed=5)
    b = suggest_annotations(labeler, 3, pool=24, seed=5)
    assert [s.seed for s in a.suggestions] == [s.seed for s in b.suggestions]
    assert [s.reason for s in a.suggestions] == [s.reason for s in b.suggestions]
    assert len({s.seed for s in a.suggestions}) == 3  # never the same candidate twice
    c = suggest_annotations(labeler, 3, pool=24, seed=6)
    assert [s.seed for s in c.suggestions] != [s.seed for s in a.suggestions]


def test_candidate_seeds_are_the_pool_suggest_draws(labeler):
    seeds = candidate_seeds(5, 24)
    # pinned: a study or a rerun that rebuilds the pool gets the same candidates
    assert seeds == [derive_seed(5, 0x5E6, i) for i in range(24)]
    report = suggest_annotations(labeler, 3, pool=24, seed=5)
    assert [s.seed for s in report.suggestions] == [seeds[s.pool_index] for s in report.suggestions]
    assert candidate_seeds(5, 0) == []
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="pool must be an int"):
            candidate_seeds(5, bad)


def test_uncertainty_only_picks_the_most_uncertain_candidates(labeler):
    seeds = [derive_seed(0, 0x5E6, i) for i in range(30)]
    scores = labeler.label(seeds).image_uncertainty
    report = suggest_annotations(labeler, 4, pool=30, weights=(1.0, 0.0, 0.0, 0.0))
    expected = scores.argsort(descending=True)[:4].tolist()
    assert [s.pool_index for s in report.suggestions] == expected


def test_pool_smaller_than_num_is_refused(labeler, tmp_path, capsys):
    with pytest.raises(ValueError, match="pool"):
        suggest_annotations(labeler, 5, pool=4)
    code = main(
        [
            "suggest",
            "--generator",
            "toyface-14",
            "--interpreter",
            "toyface-14",
            "--num",
            "5",
            "--pool",
            "4",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2 and "--pool 4 is smaller than --num 5" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_written_suggestions_are_an_annotation_folder_that_merges(labeler, tmp_path):
    report = suggest_annotations(labeler, 2, pool=12)
    folder = write_suggestions(labeler, report, tmp_path / "next")
    assert folder.ids == ["s00000", "s00001"]
    doc = json.loads((tmp_path / "next" / "suggestions.json").read_text())
    assert [e["id"] for e in doc["suggestions"]] == folder.ids
    assert all(e["reason"] for e in doc["suggestions"])
    assert (tmp_path / "next" / "suggestions.png").is_file()
    draw_masks(tmp_path / "next", folder.ids)
    suggested = Annotations.load(tmp_path / "next")
    assert suggested.seeds == [s.seed for s in report.suggestions]
    first_folder = sample_annotation_folder(
        labeler.G,
        2,
        tmp_path / "first",
        seed=100,
        class_names=NAMES,
        palette=labeler.palette,
        truncation_psi=labeler.truncation_psi,
    )
    draw_masks(tmp_path / "first", first_folder.ids)
    first = Annotations.load(tmp_path / "first")
    merged = Annotations.merge(first, suggested)
    assert len(merged) == 4 and merged.ids == ["00000", "00001", "s00000", "s00001"]
    assert merged.seeds == [100, 101, *suggested.seeds]
    assert torch.equal(merged.w[2:], suggested.w)
    assert (
        main(
            [
                "merge-annotations",
                str(tmp_path / "first"),
                str(tmp_path / "next"),
                "--out",
                str(tmp_path / "all"),
            ]
        )
        == 0
    )
    assert Annotations.load(tmp_path / "all").ids == merged.ids


def draw_masks(root, ids) -> None:
    """Play annotator: one mask per sampled image."""
    for sid in ids:
        Image.fromarray(np.ones((16, 16), np.uint8)).save(root / "masks" / f"{sid}.png")


def test_merge_refuses_parts_that_do_not_belong_together():
    base = Annotations.from_arrays(
        masks=np.zeros((1, 8, 8), np.uint8), class_names=["x", "y"], seeds=[1]
    )
    other_classes = Annotations.from_arrays(
        masks=np.zeros((1, 8, 8), np.uint8), class_names=["x", "z"], seeds=[2], ids=["b0"]
    )
    with pytest.raises(AnnotationError, match="class_names"):
        Annotations.merge(base, other_classes)
    same_ids = Annotations.from_arrays(
        masks=np.zeros((1, 8, 8), np.uint8), class_names=["x", "y"], seeds=[2]
    )
    with pytest.raises(AnnotationError, match="ids 00000 appear in more than one part"):
        Annotations.merge(base, same_ids)
    other_size = Annotations.from_arrays(
        masks=np.zeros((1, 4, 4), np.uint8), class_names=["x", "y"], seeds=[3], ids=["c0"]
    )
    with pytest.raises(AnnotationError, match="mask resolution"):
        Annotations.merge(base, other_size)


def test_merge_keeps_the_latent_kinds_every_part_stores(caplog):
    """A folder of seeds (a preset's) merges with a sampled one (w and seeds): the merged
    set keeps the seeds, from which every sample's w regenerates."""
    masks = np.zeros((1, 8, 8), np.uint8)
    seeds_only = Annotations.from_arrays(masks=masks, class_names=["x", "y"], seeds=[1])
    w = torch.randn(1, 4, 6)
    with_w = Annotations.from_arrays(
        masks=masks, class_names=["x", "y"], seeds=[2], w=w, ids=["s0"]
    )
    with caplog.at_level("WARNING", logger="dgan_data.annotations.folder"):
        merged = Annotations.merge(seeds_only, with_w)
    assert merged.seeds == [1, 2] and merged.w is None
    assert "the w stored in part 1 is left out" in caplog.text
    # both store w: it is kept, concatenated (another sample's: the same w twice is refused)
    other_w = w + 1
    both = Annotations.merge(
        with_w, Annotations.from_arrays(masks=masks, class_names=["x", "y"], w=other_w)
    )
    assert torch.equal(both.w, torch.cat([w, other_w])) and both.seeds is None
    # nothing in common: refused, naming what each part stores
    w_only = Annotations.from_arrays(masks=masks, class_names=["x", "y"], w=w, ids=["w0"])
    with pytest.raises(AnnotationError, match="no kind of latent is stored by every part"):
        Annotations.merge(seeds_only, w_only)


@pytest.mark.parametrize("weights", [["1", "1", "-0.5", "1"], ["1", "nan", "0.5", "1"]])
def test_bad_cli_weights_are_refused(tmp_path, capsys, weights):
    argv = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14"]
    argv += ["--num", "1", "--pool", "2", "--out", str(tmp_path / "s"), "--weights", *weights]
    with_exit = None
    try:
        with_exit = main(argv)
    except SystemExit as exc:  # argparse's own type errors
        with_exit = exc.code
    assert with_exit == 2 and "weights" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_cli_suggest_with_annotations_uses_novelty(tmp_path, capsys):
    annotations = Path(dgan_data.toy.__file__).parent / "assets" / "annotations"
    argv = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14"]
    argv += ["--annotations", str(annotations), "--num", "2", "--pool", "8"]
    argv += ["--out", str(tmp_path / "s"), "--weights", "0", "0", "0", "1"]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "s" / "suggestions.json").read_text())
    assert doc["weights"]["novelty"] == 1.0
    assert all("new features" in e["reason"] for e in doc["suggestions"])
    assert "new features" in capsys.readouterr().out


def test_cli_coverage_by_is_recorded_and_checked(tmp_path, capsys):
    argv = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14"]
    argv += ["--num", "1", "--pool", "4"]
    assert main([*argv, "--out", str(tmp_path / "s"), "--coverage-by", "labels"]) == 0
    doc = json.loads((tmp_path / "s" / "suggestions.json").read_text())
    assert doc["coverage_by"] == "labels"
    assert set(doc["class_images_expected_after"]) == set(doc["class_names"])
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "t"), "--coverage-by", "pixels"])
    assert exc.value.code == 2 and "invalid choice: 'pixels'" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("coverage_by", ["mass", "peak"])
def test_coverage_by_probabilities_bounds_them_per_batch(labeler, monkeypatch, coverage_by):
    """The ensemble's probabilities of a batch stay under _PROBABILITY_BYTES: smaller batches,
    the same picks."""
    import dgan_data.suggest as suggest_module

    whole = suggest_annotations(labeler, 3, pool=10, seed=2, coverage_by=coverage_by)
    sizes = []
    real = labeler.synthesize

    def recording(seeds):
        sizes.append(len(seeds))
        return real(seeds)

    monkeypatch.setattr(labeler, "synthesize", recording)
    K, (H, W) = len(NAMES), labeler.frame
    monkeypatch.setattr(suggest_module, "_PROBABILITY_BYTES", 3 * K * H * W * 4)
    bounded = suggest_annotations(labeler, 3, pool=10, seed=2, coverage_by=coverage_by)
    assert sizes == [3, 3, 3, 1]
    assert [s.seed for s in bounded.suggestions] == [s.seed for s in whole.suggestions]
    sizes.clear()
    suggest_annotations(labeler, 3, pool=10, seed=2, coverage_by="labels", batch_size=8)
    assert sizes == [8, 2]  # labels need no probabilities
