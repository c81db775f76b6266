"""Review of suggest / merge-annotations: already annotated candidates are never
suggested and merge refuses the same latent twice; suggest pre-checks everything merge
compares; the diversity scale leaves each candidate's own distance out; a clashing
--id-prefix exits 2; tied scores share their rank; the coverage reason says what is
still below target; API arguments are checked before the pool is scored."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_stream import random_interpreter, tiny_generator

from dgan_data.annotations import AnnotationError, Annotations
from dgan_data.cli import main
from dgan_data.interpreter import Interpreter, feature_layout
from dgan_data.labeler import Labeler
from dgan_data.seeds import z_from_seeds
from dgan_data.suggest import (
    candidate_seeds,
    suggest_annotations,
    suggestion_conflicts,
    write_suggestions,
)

NAMES = ["background", "a", "b", "c", "d"]
TOY_ANNOTATIONS = Path(__file__).resolve().parents[1] / "dgan_data/toy/assets/annotations"
SUGGEST = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14"]


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G, num_classes=5)
    interp.class_names = list(NAMES)
    return Labeler(G, interp, device="cpu")


def annotations_of(labeler: Labeler, of: list[int], **fields) -> Annotations:
    """Annotations of these seeds with the interpreter's labels as masks, made with the
    labeler's generator and settings (``fields`` override or add)."""
    masks = labeler.label(of).masks.to(torch.uint8)
    base = dict(
        masks=masks.numpy(),
        class_names=NAMES,
        seeds=of,
        truncation_psi=labeler.truncation_psi,
        generator_fingerprint=labeler.G.fingerprint(),
    )
    return Annotations.from_arrays(**{**base, **fields})


def draw(root: Path, size: tuple[int, int] = (16, 16)) -> None:
    """Play annotator: a mask for every image of the folder."""
    for image in sorted((root / "images").iterdir()):
        Image.fromarray(np.ones(size, np.uint8)).save(root / "masks" / image.name)


def fail_if_scored(monkeypatch, labeler: Labeler) -> None:
    def synthesize(seeds):
        raise AssertionError("the pool was scored")

    monkeypatch.setattr(labeler, "synthesize", synthesize)


# ----------------------------------------------- 1. already annotated candidates
def test_a_second_round_never_suggests_what_existing_holds(labeler, tmp_path):
    first = suggest_annotations(labeler, 2, pool=6, seed=3, weights=(1.0, 0.0, 0.0, 0.0))
    picked = [s.seed for s in first.suggestions]
    existing = annotations_of(labeler, picked, ids=["s00000", "s00001"])
    again = suggest_annotations(
        labeler, 2, pool=6, seed=3, existing=existing, weights=(1.0, 0.0, 0.0, 0.0)
    )
    assert not {s.seed for s in again.suggestions} & set(picked)
    assert again.excluded == 2 and first.excluded == 0
    folder = write_suggestions(labeler, again, tmp_path / "next", id_prefix="s2", preview=False)
    doc = json.loads((folder.root / "suggestions.json").read_text())
    assert doc["excluded"] == 2


def test_candidates_with_a_stored_w_are_left_out_without_seeds(labeler):
    pool = candidate_seeds(4, 5)
    with torch.no_grad():
        w = labeler.G.mapping(z_from_seeds(pool[:2], labeler.G.z_dim), labeler.truncation_psi)
    existing = annotations_of(labeler, pool[:2], seeds=None, w=w)
    report = suggest_annotations(
        labeler, 3, pool=5, seed=4, existing=existing, weights=(1.0, 0.0, 0.0, 0.0)
    )
    assert report.excluded == 2
    assert sorted(s.pool_index for s in report.suggestions) == [2, 3, 4]


def test_too_few_candidates_left_is_a_clear_error(labeler, monkeypatch):
    pool = candidate_seeds(0, 3)
    existing = annotations_of(labeler, pool[:2])
    fail_if_scored(monkeypatch, labeler)
    with pytest.raises(ValueError, match=r"already hold 2 of the pool's 3 candidates"):
        suggest_annotations(labeler, 2, pool=3, existing=existing)


def test_merge_refuses_the_same_seed_in_two_parts(tmp_path):
    masks = np.zeros((2, 8, 8), np.uint8)
    a = Annotations.from_arrays(masks=masks, class_names=["x", "y"], seeds=[7, 8])
    b = Annotations.from_arrays(masks=masks, class_names=["x", "y"], seeds=[9, 7], ids=["n0", "n1"])
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    with pytest.raises(AnnotationError) as err:
        Annotations.merge(Annotations.load(tmp_path / "a"), Annotations.load(tmp_path / "b"))
    message = str(err.value)
    assert "seed 7" in message and "(id 00000)" in message and "(id n1)" in message
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message
    code = main(
        [
            "merge-annotations",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--out",
            str(tmp_path / "all"),
        ]
    )
    assert code == 2 and not (tmp_path / "all").exists()


def test_merge_refuses_an_identical_stored_w_in_two_parts():
    masks = np.zeros((1, 8, 8), np.uint8)
    w = torch.randn(1, 4, 6)
    a = Annotations.from_arrays(masks=masks, class_names=["x", "y"], w=w)
    b = Annotations.from_arrays(masks=masks, class_names=["x", "y"], w=w.clone(), ids=["n0"])
    with pytest.raises(
        AnnotationError, match=r"the same w in part 0 \(id 00000\) and part 1 \(id n0\)"
    ):
        Annotations.merge(a, b)
    other = Annotations.from_arrays(masks=masks, class_names=["x", "y"], w=w + 1, ids=["n0"])
    assert len(Annotations.merge(a, other)) == 2


# ------------------------------------------ 2. suggest pre-checks what merge refuses
def variants(labeler: Labeler) -> dict[str, Annotations]:
    seeds = [11, 12]
    images = labeler.G.synthesize(
        labeler.G.mapping(z_from_seeds(seeds, labeler.G.z_dim), labeler.truncation_psi),
        noise="const",
    )[0]
    images = ((images.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
    center = labeler.G.mapping(z_from_seeds([5], labeler.G.z_dim), 1.0)[0].detach()
    return {
        "merges": annotations_of(labeler, seeds, images=images),
        "stored images": annotations_of(labeler, seeds),
        "latent kind": annotations_of(
            labeler, seeds, seeds=None, z=z_from_seeds(seeds, labeler.G.z_dim), images=images
        ),
        "truncation_center": annotations_of(
            labeler, seeds, images=images, truncation_center=center
        ),
    }


@pytest.mark.parametrize("case", ["merges", "stored images", "latent kind", "truncation_center"])
def test_suggestion_conflicts_are_what_merge_refuses(labeler, tmp_path, case):
    existing = variants(labeler)[case]
    conflicts = suggestion_conflicts(labeler, existing)
    report = suggest_annotations(labeler, 1, pool=3, seed=1, weights=(1.0, 0.0, 0.0, 0.0))
    write_suggestions(labeler, report, tmp_path / "next", preview=False)
    draw(tmp_path / "next")
    suggested = Annotations.load(tmp_path / "next")
    if case == "merges":
        assert conflicts == []
        assert len(Annotations.merge(existing, suggested)) == 3
        return
    assert len(conflicts) == 1 and conflicts[0].startswith(case), conflicts
    with pytest.raises(AnnotationError, match=case):
        Annotations.merge(existing, suggested)


def test_merge_names_the_parts_whose_truncation_center_differs():
    masks = np.zeros((1, 8, 8), np.uint8)
    a = Annotations.from_arrays(masks=masks, class_names=["x", "y"], seeds=[1])
    b = Annotations.from_arrays(
        masks=masks, class_names=["x", "y"], seeds=[2], ids=["n0"], truncation_center=torch.zeros(6)
    )
    with pytest.raises(
        AnnotationError, match=r"part 1: truncation_center .* differs from part 0's"
    ):
        Annotations.merge(a, b)


def test_cli_suggest_refuses_annotations_without_images_before_scoring(tmp_path, capsys):
    preset = Annotations.load(TOY_ANNOTATIONS)
    fields = {k: getattr(preset, k) for k in ("masks", "class_names", "seeds", "truncation_psi")}
    no_images = Annotations.from_arrays(
        **fields,
        truncation_cutoff=preset.truncation_cutoff,
        generator_fingerprint=preset.generator_fingerprint,
    )
    no_images.save(tmp_path / "ann")
    out = tmp_path / "next"
    argv = [*SUGGEST, "--annotations", str(tmp_path / "ann"), "--num", "1", "--pool", "2"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stored images True differs" in err[0]
    assert not out.exists()


# --------------------------------------------------------------- 3. diversity scale
def test_diversity_scale_leaves_each_candidates_own_distance_out(labeler):
    from dgan_data.suggest import _descriptor

    pool, seed = 24, 2
    masks = labeler.label(candidate_seeds(seed, pool)).masks
    desc, _ = _descriptor(masks, len(NAMES))
    d = torch.cdist(desc, desc)
    d.fill_diagonal_(float("inf"))
    true_median = float(np.median(d.min(1).values.numpy()))
    assert true_median > 0
    report = suggest_annotations(labeler, 2, pool=pool, seed=seed, weights=(0.0, 0.0, 1.0, 0.0))
    second = report.suggestions[1]
    assert f"distance {second.distance / true_median:.2f} to the nearest" in second.reason
    assert report.diversity_scale == pytest.approx(true_median)


def test_diversity_scale_is_computed_in_chunks_and_falls_back_when_zero(caplog, monkeypatch):
    import dgan_data.suggest as suggest_module

    desc = torch.randn(40, 7, generator=torch.Generator().manual_seed(0))
    whole = suggest_module._diversity_scale(desc, 0)
    d = torch.cdist(desc, desc)
    d.fill_diagonal_(float("inf"))
    assert whole == pytest.approx(float(np.median(d.min(1).values.numpy())))
    monkeypatch.setattr(suggest_module, "_CDIST_ELEMENTS", 7)
    assert suggest_module._diversity_scale(desc, 0) == pytest.approx(whole)
    with caplog.at_level(logging.INFO, logger="dgan_data.suggest"):
        assert suggest_module._diversity_scale(torch.zeros(10, 7), 0) == 1.0
    assert "diversity scale" in caplog.text


# ------------------------------------------------------------ 4. clashing --id-prefix
def test_an_id_prefix_that_clashes_with_annotations_exits_2_before_scoring(tmp_path, capsys):
    preset = Annotations.load(TOY_ANNOTATIONS)
    renamed = Annotations(
        **{**preset._fields(), "ids": [f"s{i:05d}" for i in range(len(preset))], "files": None}
    )
    renamed.save(tmp_path / "ann")
    out = tmp_path / "next"
    argv = [*SUGGEST, "--annotations", str(tmp_path / "ann"), "--num", "2", "--pool", "2"]
    code = main([*argv, "--weights", "1", "1", "0.5", "0", "--id-prefix", "s", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--id-prefix s: ids s00000, s00001 are already in --annotations" in err[0]
    assert "try --id-prefix s2" in err[0]
    assert not out.exists()


# ------------------------------------------------------------------ 5. tied scores
@pytest.fixture(scope="module")
def one_model_labeler() -> Labeler:
    """A one-model ensemble: its JS divergence, hence every image score, is 0."""
    G = tiny_generator()
    interp = Interpreter(feature_layout(G), 5, num_models=1, label_size=(16, 16), seed=0)
    interp.class_names = list(NAMES)
    return Labeler(G, interp.eval(), device="cpu")


def test_tied_scores_share_their_rank_and_ties_go_to_the_lower_index(one_model_labeler, caplog):
    with caplog.at_level(logging.WARNING, logger="dgan_data.suggest"):
        report = suggest_annotations(
            one_model_labeler, 3, pool=8, seed=0, weights=(1.0, 0.0, 0.0, 0.0)
        )
    assert [s.pool_index for s in report.suggestions] == [0, 1, 2]
    assert [s.uncertainty_rank for s in report.suggestions] == pytest.approx([9 / 16] * 3)
    assert all("(more than 0 % of the pool)" in s.reason for s in report.suggestions)
    assert "same uncertainty score" in caplog.text


def test_partial_ties_share_the_mean_rank(labeler, monkeypatch):
    from dgan_data.suggest import _mean_rank

    scores = torch.tensor([0.2, 0.1, 0.2, 0.1], dtype=torch.float64)
    assert _mean_rank(scores).tolist() == [0.875, 0.375, 0.875, 0.375]
    real = labeler.label_synthesized

    def tied(*args, **kwargs):  # the pool's scores: 0.2, 0.1, 0.2, 0.1
        batch = real(*args, **kwargs)
        batch.image_uncertainty = scores[: len(batch)].float()
        return batch

    monkeypatch.setattr(labeler, "label_synthesized", tied)
    report = suggest_annotations(labeler, 4, pool=4, seed=0, weights=(1.0, 0.0, 0.0, 0.0))
    assert [s.pool_index for s in report.suggestions] == [0, 2, 1, 3]
    assert [s.uncertainty_rank for s in report.suggestions] == [0.875, 0.875, 0.375, 0.375]
    shares = [re.search(r"more than (\d+) % of the pool", s.reason)[1] for s in report.suggestions]
    assert shares == ["50", "50", "0", "0"]


# ------------------------------------------------------------- 6. coverage reason
def test_reason_names_the_classes_still_below_target(labeler):
    pool, seed = 8, 0
    first = suggest_annotations(
        labeler, 1, pool=pool, seed=seed, weights=(1.0, 0.0, 0.0, 0.0), coverage_by="labels"
    ).suggestions[0]
    absent = [k for k, name in enumerate(NAMES) if name not in first.classes]
    assert absent, "the test needs a top pick that lacks a class"
    rare = absent[0]
    others = [k for k in range(5) if k != rare]
    masks = torch.zeros(3, 16, 16, dtype=torch.uint8)
    for j, k in enumerate(others):  # every class but `rare`, in each of 3 images
        masks[:, :, 4 * j : 4 * j + 4] = k
    existing = Annotations.from_arrays(masks=masks.numpy(), class_names=NAMES, seeds=[1, 2, 3])
    report = suggest_annotations(
        labeler,
        1,
        pool=pool,
        seed=seed,
        existing=existing,
        weights=(1.0, 0.0, 0.0, 0.0),
        coverage_by="labels",
    )
    pick = report.suggestions[0]
    assert pick.pool_index == first.pool_index and pick.new_classes == []
    assert f"adds no class below its coverage target (still below: {NAMES[rare]})" in pick.reason


# --------------------------------------------------------- 7. API checks up front
def test_existing_must_be_annotations(labeler):
    with pytest.raises(TypeError, match=r"existing must be Annotations.*Annotations\.load"):
        suggest_annotations(labeler, 1, pool=2, existing=str(TOY_ANNOTATIONS))


@pytest.mark.parametrize("weights", [None, 1.0, "1111", (1.0, 1.0, 0.5)])
def test_weights_must_be_a_sequence_of_four(labeler, weights):
    with pytest.raises(ValueError, match="weights must be 4 numbers >= 0"):
        suggest_annotations(labeler, 1, pool=2, weights=weights)


def test_numpy_counts_and_weights_are_accepted(labeler):
    report = suggest_annotations(
        labeler,
        np.int64(2),
        pool=np.int64(4),
        batch_size=np.int32(3),
        coverage_target=np.int64(2),
        weights=np.array([1.0, 1.0, 0.5, 0.0]),
    )
    assert len(report.suggestions) == 2 and report.pool == 4
    json.dumps(report.to_dict())  # plain Python numbers


def test_a_random_noise_labeler_is_refused_before_scoring(labeler, monkeypatch):
    random_noise = Labeler(labeler.G, labeler.interpreter, device="cpu", noise="random")
    fail_if_scored(monkeypatch, random_noise)
    with pytest.raises(ValueError, match="noise='const'"):
        suggest_annotations(random_noise, 1, pool=2)


def test_a_crop_that_no_folder_records_is_refused_before_scoring(labeler, monkeypatch):
    cropped = Labeler(labeler.G, labeler.interpreter, device="cpu")
    monkeypatch.setattr(cropped, "frame", (8, 8))
    monkeypatch.setattr(cropped, "crop", (0, 0, 4, 4))
    fail_if_scored(monkeypatch, cropped)
    with pytest.raises(ValueError, match="an annotation folder cannot record that crop"):
        suggest_annotations(cropped, 1, pool=2)


def test_existing_annotations_of_another_generator_are_refused(labeler, monkeypatch):
    existing = annotations_of(labeler, [1, 2], generator_fingerprint="0123456789abcdef")
    fail_if_scored(monkeypatch, labeler)
    with pytest.raises(ValueError, match="generator 0123456789abcdef"):
        suggest_annotations(labeler, 1, pool=2, existing=existing)


def test_diversity_scale_of_an_even_count_is_the_mean_of_the_middle_two():
    """torch's median() took the lower middle value: nearest distances (2, 2, 6, 6) gave
    2, not 4, and (0, 0, 4, 4) gave 0, so the scale fell back to an unscaled 1."""
    import dgan_data.suggest as suggest_module

    pairs = torch.tensor([[0.0], [2.0], [10.0], [16.0]])  # nearest others: 2, 2, 6, 6
    assert suggest_module._diversity_scale(pairs, 0) == pytest.approx(4.0)
    twins = torch.tensor([[0.0], [0.0], [10.0], [14.0]])  # nearest others: 0, 0, 4, 4
    assert suggest_module._diversity_scale(twins, 0) == pytest.approx(2.0)
