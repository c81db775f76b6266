"""Fitting the interpreter: masks with no annotated pixel are refused before any
feature map is computed (the docstring's promise; every image used to be regenerated
and stored first), and a model that stops on a plateau at the step cap is not reported
as cut off by the cap (``dgan-data fit`` told the user more steps may fit better)."""

from __future__ import annotations

import pytest
import torch

from dgan_data.cli.summaries import fit_summary
from dgan_data.interpreter import Interpreter

LAYOUT = [(4, 4, 4), (4, 8, 8)]


def _features(n: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [[torch.randn(c, h, w, generator=g) for c, h, w in LAYOUT] for _ in range(n)]


def test_all_ignored_masks_are_refused_before_any_feature_map():
    calls: list[int] = []

    def features(i: int) -> list[torch.Tensor]:
        calls.append(i)
        return _features(1)[0]

    with pytest.raises(ValueError, match="255 \\(ignore\\): nothing to train on"):
        Interpreter.fit_features(features, torch.full((3, 8, 8), 255), 2, progress=False)
    assert calls == []


def test_one_annotated_pixel_is_enough_to_pass_the_check():
    masks = torch.full((2, 8, 8), 255)
    masks[1, 3, 3] = 1
    interp = Interpreter.fit_features(
        _features(2), masks, 2, num_models=1, batch_size=4, max_steps=1, progress=False
    )
    assert interp.training_info["annotated_pixels"] == 1


def _plateau_fit(max_steps: int) -> dict:
    masks = torch.randint(0, 2, (3, 8, 8), generator=torch.Generator().manual_seed(1))
    # min_delta 0.99: no window counts as an improvement, so every model plateaus as
    # soon as min_steps allows, here at step 4
    interp = Interpreter.fit_features(
        _features(3), masks, 2, num_models=2, batch_size=32, max_steps=max_steps,
        min_steps=4, eval_every=1, patience=1, min_delta=0.99, progress=False,
    )  # fmt: skip
    return interp.training_info


def test_a_plateau_at_the_step_cap_is_recorded_as_a_plateau():
    later, at_cap = _plateau_fit(5), _plateau_fit(4)
    assert later["steps"] == at_cap["steps"] == [4, 4]
    assert at_cap["plateaued"] == later["plateaued"] == [True, True]
    assert "step cap" not in fit_summary(later, 5)
    assert "step cap" not in fit_summary(at_cap, 4)


def test_models_cut_off_by_the_cap_are_still_reported():
    info = _plateau_fit(3)  # min_steps 4 is never reached
    assert info["steps"] == [3, 3] and info["plateaued"] == [False, False]
    assert "2 of 2 stopped at the step cap 3 (--max-steps 3)" in fit_summary(info, 3)
