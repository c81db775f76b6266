"""Resuming sample into a folder it did not make the same way: a stored truncation
centre, samples without seeds; merging parts whose centres are the same in two shapes;
a manifest's truncation cutoff."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_annotations import CLASSES, TinyGenerator

from dgan_data.annotations import AnnotationError, Annotations, sample_annotation_folder


@pytest.fixture
def G():  # noqa: N802 (the generator, as in the library)
    return TinyGenerator(height=8, width=8)


def _masks(n: int) -> np.ndarray:
    masks = np.zeros((n, 8, 8), np.uint8)
    masks[:, 2:6, 2:6] = 1
    return masks


def _saved(G, root, **kwargs):
    """A folder with drawn masks and stored images, as a user would hand it to sample."""
    kw = dict(masks=_masks(2), class_names=CLASSES, generator_fingerprint=G.fingerprint(), **kwargs)
    first = Annotations.from_arrays(**kw)
    Annotations.from_arrays(**kw, images=first.generate_images(G)).save(root)
    return root


def test_a_folder_with_a_stored_centre_is_refused_not_regenerated(G, tmp_path):
    """The centre was dropped: the drawn images were regenerated away from their masks."""
    centre = G.average_w() + 0.5
    root = _saved(
        G, tmp_path / "ann", seeds=[0, 1], ids=["00000", "00001"], truncation_psi=0.8,
        truncation_center=centre,
    )  # fmt: skip
    image = (root / "images" / "00000.png").read_bytes()
    manifest = (root / "manifest.json").read_text()
    with pytest.raises(AnnotationError, match=r"truncation centre was 'truncation_center\.npy'"):
        sample_annotation_folder(G, 3, root, truncation_psi=0.8, class_names=CLASSES)
    assert (root / "images" / "00000.png").read_bytes() == image
    assert (root / "manifest.json").read_text() == manifest


def test_a_folder_of_samples_without_seeds_is_refused_by_name(G, tmp_path):
    """int(None) was a traceback (one sample), and two were 'the same seed' None."""
    w = G.mapping(torch.randn(2, G.z_dim))
    root = _saved(G, tmp_path / "ann", w=w, ids=["q0", "q1"])
    with pytest.raises(AnnotationError, match=r"samples 'q0', 'q1' have no seed") as err:
        sample_annotation_folder(G, 1, root, class_names=CLASSES)
    assert "seed None" not in str(err.value)


def test_a_folder_with_one_seedless_sample_is_refused_not_a_type_error(G, tmp_path):
    w = G.mapping(torch.randn(1, G.z_dim))
    kw = dict(masks=_masks(1), class_names=CLASSES, generator_fingerprint=G.fingerprint())
    first = Annotations.from_arrays(**kw, w=w, ids=["q0"])
    root = tmp_path / "ann"
    Annotations.from_arrays(**kw, w=w, ids=["q0"], images=first.generate_images(G)).save(root)
    with pytest.raises(AnnotationError, match="'q0' have no seed"):
        sample_annotation_folder(G, 1, root, class_names=CLASSES)


def test_parts_with_the_same_centre_in_two_shapes_merge(G):
    centre = G.average_w()
    rows = centre.expand(G.num_ws, -1).clone()
    kw = dict(masks=_masks(1), class_names=CLASSES, truncation_psi=0.7)
    a = Annotations.from_arrays(**kw, seeds=[0], ids=["a0"], truncation_center=centre)
    b = Annotations.from_arrays(**kw, seeds=[1], ids=["b0"], truncation_center=rows)
    assert torch.equal(a.latents_w(G), Annotations.from_arrays(
        **kw, seeds=[0], ids=["a0"], truncation_center=rows).latents_w(G))  # fmt: skip
    assert len(Annotations.merge(a, b)) == 2


def test_parts_with_other_centres_still_differ(G):
    centre = G.average_w()
    rows = centre.expand(G.num_ws, -1).clone()
    rows[1] += 1.0
    kw = dict(masks=_masks(1), class_names=CLASSES, truncation_psi=0.7)
    a = Annotations.from_arrays(**kw, seeds=[0], ids=["a0"], truncation_center=centre)
    b = Annotations.from_arrays(**kw, seeds=[1], ids=["b0"], truncation_center=rows)
    with pytest.raises(AnnotationError, match="truncation_center"):
        Annotations.merge(a, b)


@pytest.mark.parametrize("cutoff", [0, 1.5])
def test_a_manifest_cutoff_below_1_is_refused_offering_ints_from_1(G, tmp_path, cutoff):
    """The schema said 'an integer in [0, inf]' of 1.5, and 0 was then refused."""
    root = _saved(G, tmp_path / "ann", seeds=[0, 1], truncation_psi=0.8, truncation_cutoff=2)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["truncation"]["cutoff"] = cutoff
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="cutoff") as err:
        Annotations.load(root)
    assert "[0, inf]" not in str(err.value)
