"""A class with no annotated pixel is named in fit's warning, so the user knows which
label the interpreter will never predict (a bare class id had to be looked up)."""

from __future__ import annotations

import logging

import torch

from dgan_data.interpreter import Interpreter


def _problem(num_classes_used: int = 2):
    g = torch.Generator().manual_seed(0)
    layout = [(4, 4, 4), (4, 8, 8)]
    feats = [[torch.randn(c, h, w, generator=g) for c, h, w in layout] for _ in range(2)]
    masks = torch.randint(0, num_classes_used, (2, 8, 8), generator=g)
    return feats, masks


def _fit(feats, masks, **kw):
    return Interpreter.fit_features(
        feats, masks, 4, num_models=1, batch_size=32, max_steps=2, eval_every=1,
        progress=False, **kw,
    )  # fmt: skip


def test_missing_classes_are_named(caplog):
    feats, masks = _problem()
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        _fit(feats, masks, class_names=["background", "skin", "teeth", "pupil"])
    (text,) = [r.getMessage() for r in caplog.records if "never predict" in r.getMessage()]
    assert "teeth (2), pupil (3)" in text
    assert "skin" not in text and "background" not in text


def test_missing_classes_without_names_keep_their_ids(caplog):
    feats, masks = _problem()
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        _fit(feats, masks)
    assert "classes without any annotated pixel: 2, 3;" in caplog.text


def test_no_warning_when_every_class_is_annotated(caplog):
    feats, masks = _problem(num_classes_used=4)
    masks[0, 0, :4] = torch.arange(4)
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        _fit(feats, masks, class_names=["a", "b", "c", "d"])
    assert "without any annotated pixel" not in caplog.text
