"""The toy renderer: determinism, exact label ranges, part rates, splits."""

from __future__ import annotations

import pytest
import torch

from dgan_data.toy import (
    CLASS_NAMES,
    CLASS_PARENTS,
    NUM_CLASSES,
    PALETTE,
    SMALL_PARTS,
    SPLITS,
    VARIATIONS,
    Variation,
    class_pixel_rates,
    colorize_mask,
    render_faces,
    render_split,
    split_seeds,
    world_tag,
)

N = 96  # enough faces for stable rates, small enough to stay fast


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return render_faces(range(5000, 5000 + N))


def test_constants_consistent() -> None:
    assert len(CLASS_NAMES) == NUM_CLASSES >= 10
    assert CLASS_NAMES[0] == "background"
    assert len(set(CLASS_NAMES)) == NUM_CLASSES
    assert PALETTE.shape == (NUM_CLASSES, 3) and PALETTE.dtype == torch.uint8
    assert len({tuple(c) for c in PALETTE.tolist()}) == NUM_CLASSES
    assert set(CLASS_PARENTS) == set(CLASS_NAMES)
    assert all(p is None or p in CLASS_NAMES for p in CLASS_PARENTS.values())
    assert len(SMALL_PARTS) >= 3 and set(SMALL_PARTS) <= set(CLASS_NAMES)


def test_splits_disjoint() -> None:
    names = sorted(SPLITS)
    assert names == ["pool", "test", "train"]
    for a in names:
        for b in names:
            if a < b:
                assert set(SPLITS[a]).isdisjoint(SPLITS[b])
    assert len(SPLITS["test"]) >= 500


def test_shapes_ranges(batch) -> None:
    img, mask = batch
    assert img.shape == (N, 3, 64, 64) and img.dtype == torch.float32
    assert mask.shape == (N, 64, 64) and mask.dtype == torch.int64
    assert img.min() >= 0 and img.max() <= 1
    assert mask.min() >= 0 and mask.max() < NUM_CLASSES


def test_deterministic_and_batch_independent(batch) -> None:
    img, mask = batch
    seeds = list(range(5000, 5000 + N))
    again_img, again_mask = render_faces(torch.tensor(seeds[5:12]))
    assert torch.equal(again_img, img[5:12]) and torch.equal(again_mask, mask[5:12])
    for j in (0, 17, N - 1):
        one_img, one_mask = render_faces([seeds[j]])
        assert torch.equal(one_img[0], img[j])
        assert torch.equal(one_mask[0], mask[j])


def test_seeds_differ(batch) -> None:
    img, mask = batch
    flat = img.flatten(1)
    d = torch.cdist(flat, flat)
    d.fill_diagonal_(float("inf"))
    assert d.min() > 1.0
    assert not torch.equal(mask[0], mask[1])


def test_every_class_appears_and_small_parts(batch) -> None:
    _, mask = batch
    rates = class_pixel_rates(mask, NUM_CLASSES)
    assert torch.isclose(rates.sum(), torch.tensor(1.0, dtype=rates.dtype))
    assert (rates > 0).all(), dict(zip(CLASS_NAMES, rates.tolist()))
    per_image = torch.stack([torch.bincount(m.flatten(), minlength=NUM_CLASSES) for m in mask])
    present = (per_image > 0).float().mean(0)
    for name in SMALL_PARTS:
        k = CLASS_NAMES.index(name)
        assert rates[k] < 0.02, f"{name} covers {rates[k]:.3%} of pixels"
    # the always-drawn small parts appear in (nearly) every face; teeth need an open mouth
    for name in ("eyebrow", "iris", "pupil", "nostril"):
        k = CLASS_NAMES.index(name)
        assert present[k] >= 0.9, f"{name} present in only {present[k]:.0%} of images"
    assert present[CLASS_NAMES.index("teeth")] >= 0.2


def test_colour_alone_is_ambiguous(batch) -> None:
    """Skin and hair colours overlap across images: no fixed colour box separates them."""
    img, mask = batch
    skin = CLASS_NAMES.index("skin")
    hair = CLASS_NAMES.index("hair")
    px = img.permute(0, 2, 3, 1)
    mean_skin = torch.stack([px[i][mask[i] == skin].mean(0) for i in range(N)])
    hair_imgs = [i for i in range(N) if (mask[i] == hair).sum() > 20]
    mean_hair = torch.stack([px[i][mask[i] == hair].mean(0) for i in hair_imgs])
    lum_skin, lum_hair = mean_skin.mean(1), mean_hair.mean(1)
    # brightness ranges of the two classes overlap
    assert lum_hair.max() > lum_skin.min() and lum_skin.max() > lum_hair.min()


def test_render_split_and_seeds() -> None:
    seeds = split_seeds("test", 10, 5)
    assert list(seeds) == list(range(SPLITS["test"].start + 10, SPLITS["test"].start + 15))
    batches = list(render_split("test", start=10, count=5, batch_size=2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    s, img, mask = batches[1]
    ref_img, ref_mask = render_faces(s)
    assert torch.equal(img, ref_img) and torch.equal(mask, ref_mask)
    with pytest.raises(KeyError, match="valid"):
        split_seeds("nope")
    with pytest.raises(ValueError, match="past its end"):
        split_seeds("test", 990, 20)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        render_faces([-1])
    with pytest.raises(ValueError, match="empty"):
        render_faces([])
    with pytest.raises(ValueError, match="integer"):
        render_faces(torch.tensor([1.5]))


def test_other_sizes_and_colorize() -> None:
    img, mask = render_faces([3, 4], size=32)
    assert img.shape == (2, 3, 32, 32) and mask.shape == (2, 32, 32)
    rgb = colorize_mask(mask)
    assert rgb.shape == (2, 3, 32, 32) and rgb.dtype == torch.uint8
    assert torch.equal(rgb[0, :, 0, 0], PALETTE[mask[0, 0, 0]])


def _head_spread(mask: torch.Tensor) -> tuple[float, float]:
    """Std of the head's centre (px, mean of x and y) and of its area (px^2) over images."""
    head = (mask == CLASS_NAMES.index("skin")) | (mask == CLASS_NAMES.index("hair"))
    head = head.float()
    area = head.sum((1, 2))
    grid = torch.arange(mask.shape[-1], dtype=torch.float32)
    cx = (head.sum(1) * grid).sum(1) / area
    cy = (head.sum(2) * grid).sum(1) / area
    return float((cx.std() + cy.std()) / 2), float(area.std())


def test_the_wide_world_varies_pose_and_scale_more_with_exact_labels(batch) -> None:
    seeds = list(range(5000, 5000 + N))
    img, mask = render_faces(seeds, variation="wide")
    assert img.shape == batch[0].shape and mask.min() >= 0 and mask.max() < NUM_CLASSES
    centre, area = _head_spread(mask)
    base_centre, base_area = _head_spread(batch[1])
    assert centre > 1.5 * base_centre and area > 1.3 * base_area  # measured 1.8x and 1.5x
    # deterministic and batch-independent like the base world
    one_img, one_mask = render_faces([seeds[7]], variation=VARIATIONS["wide"])
    assert torch.equal(one_img[0], img[7]) and torch.equal(one_mask[0], mask[7])
    # every class still appears
    assert (class_pixel_rates(mask, NUM_CLASSES) > 0).all()


def test_occluders_cover_the_face_as_background_and_move_nothing_else() -> None:
    seeds = range(7000, 7000 + 48)
    _, clear = render_faces(seeds, variation=Variation(occluder_rate=0.0))
    _, occluded = render_faces(seeds, variation=Variation(occluder_rate=1.0))
    changed = occluded != clear
    # an occluder only ever turns pixels into background: the face's draws stay put
    assert bool((occluded[changed] == 0).all())
    face = clear > 0
    covered = (changed & face).flatten(1).any(1)
    assert covered.float().mean() >= 0.75  # most rods cross the head or the shoulders
    # the default variation is the base world, with no occluder
    _, base = render_faces(seeds)
    assert torch.equal(base, clear)
    _, some = render_faces(seeds, variation=Variation(occluder_rate=0.35))
    share = (some != clear).flatten(1).any(1).float().mean()
    assert 0.1 <= share <= 0.6


def test_unknown_variation_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="base"):
        render_faces([1], variation="narrow")


def test_world_tag_keeps_base_names_unchanged_and_others_apart() -> None:
    assert world_tag("base") == ""  # cached base-world files predate worlds
    assert world_tag("wide") == "_wide"
    with pytest.raises(ValueError, match="narrow"):
        world_tag("narrow")
