"""Review of the toy world's quality, annotator and render helpers: bad arguments are a
ValueError naming them before any work, and the part-nesting claim says what is true."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dgan_data.toy import render
from dgan_data.toy.annotator import ToyAnnotator, annotate
from dgan_data.toy.quality import (
    connected_components,
    diversity_stats,
    evaluate_generator,
    generate_images,
    kid,
    part_validity,
    render_images,
)
from dgan_data.toy.render import (
    CLASS_NAMES,
    CLASS_PARENTS,
    class_pixel_rates,
    render_faces,
    render_split,
    split_seeds,
)

RENDER_PY = Path(render.__file__)


class CountingG(nn.Module):
    """A stand-in generator that counts its calls and returns grey images in [-1, 1]."""

    z_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise: str = "const"):
        self.calls += 1
        return torch.zeros(len(z), 3, 32, 32), None


def _tiny_annotator() -> ToyAnnotator:
    """A ToyAnnotator around a 1x1 convolution (float32 weights, no smp needed)."""
    torch.manual_seed(0)
    return ToyAnnotator(nn.Conv2d(3, len(CLASS_NAMES), 1), len(CLASS_NAMES), {}).eval()


def _raises_naming(name: str, call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


# ---------------------------------------------------- 1. batch and chunk sizes
@pytest.mark.parametrize("value", [-1, 0, 1.5])
def test_render_images_refuses_a_batch_size_below_one(value) -> None:
    _raises_naming("batch_size", lambda: render_images([40_000, 40_001], batch_size=value, size=32))


@pytest.mark.parametrize("value", [-1, 0])
def test_generate_images_refuses_a_batch_size_below_one(value) -> None:
    G = CountingG()
    _raises_naming("batch_size", lambda: generate_images(G, [0, 1, 2], batch_size=value, size=32))
    assert G.calls == 0


@pytest.mark.parametrize("value", [-1, 0])
def test_part_validity_and_connected_components_refuse_a_chunk_below_one(value) -> None:
    _, masks = render_faces([40_000, 40_001], size=32)
    _raises_naming("chunk", lambda: part_validity(masks, chunk=value))
    _raises_naming("chunk", lambda: connected_components(masks == 5, chunk=value))


# ------------------------------------------------------- 2. annotator dtypes
def test_annotate_takes_float64_images_like_float32_ones() -> None:
    model = _tiny_annotator()
    images, _ = render_faces([40_000, 40_001], size=32)
    masks = annotate(model, images.double())
    assert masks.shape == (2, 32, 32) and masks.dtype == torch.long
    assert torch.equal(masks, annotate(model, images))
    assert model(images.double()).dtype == torch.float32


def test_uint8_images_are_a_value_error_naming_the_images() -> None:
    model = _tiny_annotator()
    images = (render_faces([40_000], size=32)[0] * 255).to(torch.uint8)
    with pytest.raises(ValueError, match=r"images.*uint8"):
        annotate(model, images)
    with pytest.raises(ValueError, match=r"images.*uint8"):
        model(images)


# ----------------------------------------------------------- 3. nesting claim
def _class_parents_comment() -> str:
    source = RENDER_PY.read_text()
    head = source[: source.index("CLASS_PARENTS: dict")]
    block = re.search(r"((?:^#:.*\n)+)\Z", head, re.M)
    assert block is not None
    return " ".join(line[2:].strip() for line in block.group(1).splitlines())


def test_class_parents_comment_names_the_eyebrows_on_the_hair() -> None:
    comment = _class_parents_comment()
    assert "except ``ear`` and ``nostril``" not in comment
    assert "eyebrow" in comment.lower() and "hair" in comment
    assert "One exception to the nesting" not in (render.__doc__ or "")


def test_eyebrows_can_lie_on_hair_while_eye_parts_nose_and_mouth_stay_inside() -> None:
    """Watch each paint: the pixels a nested part takes that were outside its parent."""
    C = {n: i for i, n in enumerate(CLASS_NAMES)}

    def subtree(parent: str) -> set[int]:
        out = {C[parent]}
        for _ in CLASS_NAMES:  # enough rounds for any depth
            out |= {C[c] for c, p in CLASS_PARENTS.items() if p is not None and C[p] in out}
        return out

    outside: dict[str, dict[str, int]] = {}
    paint = render._Canvas.paint

    def watched(self, d, colour, cls):
        before = self.mask.clone()
        result = paint(self, d, colour, cls)
        name = CLASS_NAMES[cls]
        parent = CLASS_PARENTS[name]
        if parent is not None:
            allowed = torch.tensor(sorted(subtree(parent)))
            bad = (d < 0) & ~torch.isin(before, allowed)
            for v in before[bad].tolist():
                counts = outside.setdefault(name, {})
                counts[CLASS_NAMES[v]] = counts.get(CLASS_NAMES[v], 0) + 1
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(render._Canvas, "paint", watched)
        render_faces(range(2_000_000, 2_000_040))
    for name in ("iris", "pupil", "nose", "mouth", "teeth"):
        assert name not in outside, (name, outside.get(name))
    assert outside.get("eyebrow", {}).get("hair", 0) > 0, outside


# --------------------------------------------------- 4. evaluate_generator
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num": 4.5}, "num"),
        ({"num": 1}, "num"),
        ({"num": 8, "seed": 1.5}, "seed"),
        ({"num": 8, "seed": -1}, "seed"),
        ({"num": 8, "num_subsets": 0}, "num_subsets"),
        ({"num": 8, "subset_size": 1}, "subset_size"),
        ({"num": 8, "batch_size": 0}, "batch_size"),
    ],
)
def test_evaluate_generator_checks_its_arguments_before_any_work(kwargs, name) -> None:
    G = CountingG()
    _raises_naming(name, lambda: evaluate_generator(G, _tiny_annotator(), **kwargs))
    assert G.calls == 0


# ---------------------------------------------------------- 5./8. diversity
def test_diversity_stats_needs_three_channels_and_the_masks_size() -> None:
    images, masks = render_faces([40_000, 40_001], size=32)
    with pytest.raises(ValueError, match=r"images \(B, 3, H, W\)"):
        diversity_stats(images[:, :1], masks)
    _, masks_16 = render_faces([40_000, 40_001], size=16)
    with pytest.raises(ValueError, match="same B, H and W"):
        diversity_stats(images, masks_16)


@pytest.mark.parametrize("n", [0, 1])
def test_diversity_stats_of_fewer_than_two_images_warns_nothing(n: int) -> None:
    images, masks = render_faces([40_000], size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = diversity_stats(images[:n], masks[:n])
    assert stats["head_area_spread"] != stats["head_area_spread"]  # NaN


# ------------------------------------------------------------------- 6. kid
def test_kid_refuses_zero_width_features() -> None:
    with pytest.raises(ValueError, match="feature column"):
        kid(torch.zeros(6, 0), torch.zeros(6, 0), subset_size=4)


@pytest.mark.parametrize("seed", [1.5, "0", True])
def test_kid_refuses_a_seed_that_is_not_an_int(seed) -> None:
    _raises_naming("seed", lambda: kid(torch.randn(6, 4), torch.randn(6, 4), 2, 4, seed))


# ------------------------------------------------------- 7. render helpers
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"start": 1.5}, "start"),
        ({"count": 2.0}, "count"),
        ({"start": True, "count": 1}, "start"),
        ({"count": True}, "count"),
    ],
)
def test_split_seeds_takes_only_ints(kwargs, name) -> None:
    _raises_naming(name, lambda: split_seeds("test", **kwargs))


def test_render_split_refuses_a_float_batch_size() -> None:
    _raises_naming("batch_size", lambda: next(render_split("test", 0, 2, batch_size=1.5, size=32)))


@pytest.mark.parametrize("num_classes", [-1, 0, 2.5])
def test_class_pixel_rates_needs_at_least_one_class(num_classes) -> None:
    masks = torch.zeros(1, 4, 4, dtype=torch.long)
    _raises_naming("num_classes", lambda: class_pixel_rates(masks, num_classes))


def test_class_pixel_rates_refuses_float_masks() -> None:
    with pytest.raises(ValueError, match=r"masks.*integer"):
        class_pixel_rates(torch.zeros(1, 4, 4))
