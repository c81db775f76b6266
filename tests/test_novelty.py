"""Feature novelty: calibration, the projection's linearity, references, suggest's use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_stream import random_interpreter, tiny_generator

from dgan_data.annotations import Annotations
from dgan_data.labeler import Labeler
from dgan_data.novelty import FeatureNovelty
from dgan_data.seeds import derive_seed
from dgan_data.suggest import _NoveltyTracker, suggest_annotations


def maps(n: int, seed: int, shift_patch: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 8, 8, 8, generator=g)
    high = torch.randn(n, 4, 16, 16, generator=g)
    if shift_patch:  # features no annotated pixel has, in a 4 x 4 patch
        high[:, :, 4:8, 4:8] += 12.0
    return [low, high]


def test_pixels_like_the_annotated_ones_are_rarely_novel_and_a_new_patch_is():
    model = FeatureNovelty(maps(6, 0), dims=16, quantile=0.99, seed=0)
    usual, _ = model.pixel_novelty(maps(4, 1))
    assert usual.shape == (4, 16, 16)
    assert float((usual > 1).double().mean()) < 0.05
    odd, _ = model.pixel_novelty(maps(4, 1, shift_patch=True))
    assert bool((odd[:, 4:8, 4:8] > 1).all())
    assert float((odd > 1).double().mean()) >= 16 / 256


def test_embedding_equals_projecting_the_concatenated_upsampled_features():
    annotated = maps(3, 0)
    model = FeatureNovelty(annotated, dims=8, seed=3)
    x = maps(2, 5)
    up = torch.cat(
        [F.interpolate(f, size=(16, 16), mode="bilinear", align_corners=False) for f in x], 1
    )
    mean = torch.cat([f.mean((0, 2, 3)) for f in annotated])
    std = torch.cat([f.std((0, 2, 3)) for f in annotated])
    proj = torch.cat(model._proj)
    expected = torch.einsum("bchw,cd->bdhw", (up - mean[:, None, None]) / std[:, None, None], proj)
    torch.testing.assert_close(model.embed(x), expected, rtol=1e-4, atol=1e-4)


def test_same_seed_same_model_and_grid_is_capped():
    a = FeatureNovelty(maps(4, 0), seed=7, grid=8)
    b = FeatureNovelty(maps(4, 0), seed=7, grid=8)
    assert a.scale == b.scale and torch.equal(a.references, b.references)
    assert a.embed(maps(1, 2)).shape[-2:] == (8, 8)


def test_added_references_stop_being_novel():
    model = FeatureNovelty(maps(6, 0), dims=16, seed=0)
    _, emb = model.pixel_novelty(maps(1, 1, shift_patch=True))
    patch = emb[0, 4:8, 4:8].reshape(-1, 16)
    assert bool(model.still_novel(patch).all())
    model.add_references(patch)
    assert not bool(model.still_novel(patch).any())


def test_tracker_drops_a_duplicate_of_the_pick():
    model = FeatureNovelty(maps(6, 0), dims=16, seed=0)
    tracker = _NoveltyTracker(model)
    odd = maps(1, 1, shift_patch=True)
    tracker.add([torch.cat([f, f]) for f in odd])  # candidates 0 and 1 are identical
    tracker.add(maps(1, 2))  # candidate 2: nothing new
    tracker.finish()
    before = tracker.current()
    assert before[0] == before[1] >= 16 / 256 and before[2] < before[0]
    tracker.pick(0)
    assert float(tracker.current()[1]) == 0.0


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G, num_classes=5)
    interp.class_names = ["background", "a", "b", "c", "d"]
    return Labeler(G, interp, device="cpu")


def existing_annotations(labeler: Labeler) -> Annotations:
    seeds = [11, 12, 13]
    masks = labeler.label(seeds).masks.to(torch.uint8)
    return Annotations.from_arrays(
        masks=masks.numpy(), class_names=labeler.class_names, seeds=seeds
    )


def test_novelty_only_suggest_picks_the_candidate_with_most_new_pixels(labeler):
    existing = existing_annotations(labeler)
    report = suggest_annotations(
        labeler, 1, pool=20, seed=4, existing=existing, weights=(0.0, 0.0, 0.0, 1.0)
    )
    _, known = labeler.G.synthesize(existing.latents_w(labeler.G), noise="const")
    model = FeatureNovelty(list(known), seed=4)
    seeds = [derive_seed(4, 0x5E6, i) for i in range(20)]
    novelty, _ = model.pixel_novelty(labeler.synthesize(seeds)[1])
    share = (novelty > 1).flatten(1).double().mean(1)
    pick = report.suggestions[0]
    assert share[pick.pool_index] == share.max()
    assert pick.novelty == pytest.approx(float(share.max()))
    assert report.weights["novelty"] == 1.0 and "new features" in pick.reason


def test_novelty_is_left_out_without_existing_annotations(labeler):
    report = suggest_annotations(labeler, 2, pool=10, weights=(1.0, 1.0, 0.5, 1.0))
    assert report.weights["novelty"] == 0.0
    assert all(s.novelty == 0.0 and "new features" not in s.reason for s in report.suggestions)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 0.5), (1.0, -1.0, 0.5, 1.0)])
def test_bad_weights_are_refused(labeler, weights):
    with pytest.raises(ValueError, match="weights"):
        suggest_annotations(labeler, 1, pool=4, weights=weights)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="dims"):
        FeatureNovelty(maps(2, 0), dims=0)
    with pytest.raises(ValueError, match="quantile"):
        FeatureNovelty(maps(2, 0), quantile=1.0)
    model = FeatureNovelty(maps(2, 0))
    with pytest.raises(ValueError, match="channels"):
        model.embed([torch.zeros(1, 3, 8, 8), torch.zeros(1, 4, 16, 16)])


def test_label_equals_its_two_halves(labeler):
    seeds = [3, 4, 5]
    whole = labeler.label(seeds)
    img, feats = labeler.synthesize(seeds)
    halves = labeler.label_synthesized(img, feats, seeds)
    for a, b in zip(whole.tensors(), halves.tensors()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(feats) == len(
        labeler.G.synthesize(labeler.G.mapping(torch.zeros(1, labeler.G.z_dim)), noise="const")[1]
    )
