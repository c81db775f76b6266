"""sample_annotation_folder checks class names and the id prefix before it writes."""

from __future__ import annotations

import pytest
from PIL import Image

from dgan_data import Annotations, load_generator, sample_annotation_folder


@pytest.fixture(scope="module")
def G():  # noqa: N802 (the generator, as in the API)
    return load_generator("toyface-14", device="cpu")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("abc", "class_names must be a sequence of names, got 'abc'"),  # became a, b, c
        ([], r"class_names must name 1\.\.254 classes .*, got 0"),
        (["hair", "hair"], "duplicate class names hair"),
        ([f"c{i}" for i in range(255)], r"must name 1\.\.254 classes .*, got 255"),
    ],
)
def test_bad_class_names_are_refused_before_anything_is_written(G, tmp_path, names, message):
    with pytest.raises(ValueError, match=message):
        sample_annotation_folder(G, 2, tmp_path / "ann", class_names=names)
    assert not (tmp_path / "ann").exists()


def test_an_id_prefix_that_makes_ids_too_long_is_refused(G, tmp_path):
    # ids are at most 128 characters: a 124-character prefix gave 129-character ids,
    # a folder Annotations.load then refused
    with pytest.raises(ValueError, match=r"id_prefix must be at most 123 characters .* got 124"):
        sample_annotation_folder(G, 2, tmp_path / "ann", id_prefix="p" * 124)
    assert not (tmp_path / "ann").exists()


def test_the_longest_id_prefix_gives_a_folder_that_loads(G, tmp_path):
    sampled = sample_annotation_folder(
        G, 1, tmp_path / "ann", id_prefix="p" * 123, class_names=["a", "b"]
    )
    assert len(sampled.ids[0]) == 128
    folder = tmp_path / "ann"
    for sample_id in sampled.ids:  # a hand-drawn mask per image, then the folder loads
        Image.new("L", (G.resolution[1], G.resolution[0]), 1).save(
            folder / "masks" / f"{sample_id}.png"
        )
    assert Annotations.load(folder).ids == sampled.ids
