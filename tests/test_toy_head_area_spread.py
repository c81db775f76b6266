"""The toy world's head-area spread is taken over the images that show a face, as the
face-centre spread is: a faceless image counted as area 0, so a generator that sometimes
drew no face looked diverse in scale and could pass the preset's diversity gate."""

from __future__ import annotations

import torch

from dgan_data.toy.quality import FACE_REGION_CLASSES, diversity_stats
from dgan_data.toy.render import render_faces


def test_a_faceless_image_does_not_widen_the_head_area_spread():
    images, masks = render_faces([40_000, 40_000, 40_000], size=32)  # one face, 3 times
    faceless = masks.clone()
    faceless[2] = 0  # background only
    same = diversity_stats(images, masks)
    with_blank = diversity_stats(images, faceless)
    assert same["head_area_spread"] == 0.0
    assert with_blank["head_area_spread"] == 0.0  # it was ~1/sqrt(3) of the face's area
    assert with_blank["face_centre_spread"] == same["face_centre_spread"] == 0.0


def test_the_spread_is_the_std_of_the_face_areas():
    images, masks = render_faces([40_000, 40_001, 40_002], size=32)
    with_blank = torch.cat([masks, torch.zeros_like(masks[:1])])
    stats = diversity_stats(torch.cat([images, images[:1]]), with_blank)
    areas = torch.tensor(
        [float(torch.isin(m, torch.tensor(FACE_REGION_CLASSES)).sum()) for m in masks]
    )
    assert abs(stats["head_area_spread"] - float(areas.std())) < 1e-4


def test_fewer_than_two_faces_give_nan():
    images, masks = render_faces([40_000, 40_001], size=32)
    masks[1] = 0
    assert (
        diversity_stats(images, masks)["head_area_spread"]
        != diversity_stats(images, masks)["head_area_spread"]
    )  # NaN
