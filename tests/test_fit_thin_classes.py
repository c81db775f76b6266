"""A class annotated in only one or two images is named in fit's warning: the
interpreter learns it poorly (the toy measurements' coverage rule), and the user can
annotate more images that show it before trusting the labels."""

from __future__ import annotations

import logging

import torch

from dgan_data.conventions import MIN_CLASS_IMAGES
from dgan_data.interpreter import Interpreter

NAMES = ["background", "skin", "teeth", "pupil"]


def _fit(masks: torch.Tensor, caplog, **kw) -> list[str]:
    g = torch.Generator().manual_seed(0)
    layout = [(4, 4, 4), (4, 8, 8)]
    feats = [[torch.randn(c, h, w, generator=g) for c, h, w in layout] for _ in masks]
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        Interpreter.fit_features(
            feats, masks, 4, num_models=1, batch_size=32, max_steps=2, eval_every=1,
            progress=False, **kw,
        )  # fmt: skip
    return [r.getMessage() for r in caplog.records if "fewer than" in r.getMessage()]


def _masks(images_with: dict[int, int], n: int = 4) -> torch.Tensor:
    """n masks of background and skin; class k is painted into the first
    ``images_with[k]`` of them."""
    masks = torch.zeros(n, 8, 8, dtype=torch.int64)
    masks[:, 4:] = 1
    for k, count in images_with.items():
        masks[:count, 0, k] = k
    return masks


def test_classes_in_one_or_two_images_are_named_with_their_counts(caplog):
    (text,) = _fit(_masks({2: 1, 3: 2}), caplog, class_names=NAMES)
    assert f"fewer than {MIN_CLASS_IMAGES} annotated images" in text
    assert "teeth (2) in 1 image," in text
    assert "pupil (3) in 2 images" in text
    assert "skin" not in text and "background" not in text


def test_ignored_pixels_do_not_count_as_a_class(caplog):
    masks = _masks({2: 3, 3: 3})
    masks[:, 7, 7] = 255
    masks[1:, 0, 2] = 255  # teeth now only in the first image, under ignore elsewhere
    (text,) = _fit(masks, caplog)
    assert "2 in 1 image" in text and "3 in" not in text


def test_no_warning_when_every_class_is_in_enough_images(caplog):
    assert _fit(_masks({2: 3, 3: 4}), caplog, class_names=NAMES) == []


def test_a_class_in_no_image_is_reported_as_missing_not_as_thin(caplog):
    (text,) = _fit(_masks({2: 2}), caplog, class_names=NAMES)
    assert "teeth (2) in 2 images" in text and "pupil" not in text
    assert any("pupil (3)" in r.getMessage() and "never predict" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_fewer_images_than_the_rule_get_one_line_not_every_class(caplog):
    (text,) = _fit(_masks({2: 1, 3: 2}, n=2), caplog, class_names=NAMES)
    assert text.startswith(
        f"only 2 annotated images: every class is in fewer than {MIN_CLASS_IMAGES}"
    )
    assert not any(name in text for name in NAMES)
