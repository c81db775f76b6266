"""Suggest's novelty after a pick: each candidate keeps an even sample of its novel
pixels, not its most novel ones. The most novel pixels of a pick are the ones that cover
other candidates least, so with them a candidate whose novel pixels the pick already
covers kept reading as novel."""

from __future__ import annotations

import torch

from dgan_data.suggest import _NOVEL_KEPT, _NoveltyTracker


class LineModel:
    """A stand-in for FeatureNovelty on a 1-D feature line: each candidate's pixels are
    given positions, a pixel's novelty is its position + 2 (all novel, the farthest the
    most), and the novelty scale is 1."""

    scale = 1.0

    def __init__(self) -> None:
        self.references: list[torch.Tensor] = []

    def pixel_novelty(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        novelty = positions + 2.0  # (B, H, W)
        return novelty, positions.unsqueeze(-1)  # embeddings (B, H, W, 1)

    def add_references(self, pixels: torch.Tensor) -> None:
        self.references.append(pixels)


def exact_still_novel(candidate: torch.Tensor, picked: torch.Tensor) -> float:
    """Share of ``candidate``'s pixels farther than the scale from every pixel of
    ``picked`` (both 1-D positions): the recount the tracker estimates."""
    d = (candidate.reshape(-1, 1) - picked.reshape(1, -1)).abs().min(1).values
    return float((d > LineModel.scale).double().mean())


def test_a_covered_candidate_is_no_longer_novel_after_the_pick():
    n = 32 * 32
    assert n > 2 * _NOVEL_KEPT  # the sample is a real subset
    spread = torch.linspace(0.0, 100.0, n).reshape(1, 32, 32)  # the pick: all of [0, 100]
    inside = torch.linspace(0.0, 50.0, n).reshape(1, 32, 32)  # another: within [0, 50]
    tracker = _NoveltyTracker(LineModel())  # type: ignore[arg-type]
    tracker.add(torch.cat([spread, inside]))
    tracker.finish()
    assert tracker.current().tolist() == [1.0, 1.0]
    tracker.pick(0)
    exact = exact_still_novel(inside, spread)
    assert exact == 0.0
    assert float(tracker.current()[1]) == exact  # it read 1.0: the pick kept [74, 100]


def test_the_estimate_tracks_a_partial_overlap():
    n = 32 * 32
    picked = torch.linspace(0.0, 60.0, n).reshape(1, 32, 32)
    other = torch.linspace(30.0, 130.0, n).reshape(1, 32, 32)  # 30 of its 100 covered
    tracker = _NoveltyTracker(LineModel())  # type: ignore[arg-type]
    tracker.add(torch.cat([picked, other]))
    tracker.finish()
    tracker.pick(0)
    exact = exact_still_novel(other, picked)
    assert abs(exact - 0.69) < 0.02
    assert abs(float(tracker.current()[1]) - exact) < 0.02  # it read 1.0 before


def test_the_pick_adds_a_spread_of_its_pixels_as_references():
    n = 32 * 32
    spread = torch.linspace(0.0, 100.0, n).reshape(1, 32, 32)
    model = LineModel()
    tracker = _NoveltyTracker(model)  # type: ignore[arg-type]
    tracker.add(spread)
    tracker.finish()
    tracker.pick(0)
    refs = torch.cat(model.references).flatten()
    assert len(refs) == _NOVEL_KEPT
    assert float(refs.min()) == 0.0 and float(refs.max()) == 100.0
    gaps = refs.sort().values.diff()
    assert float(gaps.max()) < 2 * 100.0 / (_NOVEL_KEPT - 1)  # even, no cluster at the top
