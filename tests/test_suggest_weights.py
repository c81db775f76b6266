"""``suggest --weights``: only their ratios matter. All zeros picked the pool's first
candidates with every gain 0, only novelty without annotations did the same, and 1e308
overflowed the gains to inf, written as ``Infinity`` into ``suggestions.json``."""

from __future__ import annotations

import json
import math

import pytest
from test_suggest import labeler  # noqa: F401  (the module-scoped fixture)

from dgan_data.cli import main
from dgan_data.suggest import suggest_annotations, write_suggestions


def test_all_zero_weights_are_refused(labeler):  # noqa: F811
    with pytest.raises(ValueError, match="weights are all 0"):
        suggest_annotations(labeler, 2, pool=6, weights=(0.0, 0.0, 0.0, 0.0))


def test_novelty_alone_needs_annotations(labeler):  # noqa: F811
    with pytest.raises(ValueError, match="novelty needs existing annotations"):
        suggest_annotations(labeler, 2, pool=6, weights=(0.0, 0.0, 0.0, 1.0))


def test_huge_weights_pick_as_their_ratios_and_stay_finite(labeler, tmp_path):  # noqa: F811
    small = suggest_annotations(labeler, 3, pool=12, weights=(1.0, 1.0, 0.5, 0.0))
    huge = suggest_annotations(labeler, 3, pool=12, weights=(1e308, 1e308, 5e307, 0.0))
    assert [s.seed for s in huge.suggestions] == [s.seed for s in small.suggestions]
    assert all(math.isfinite(s.gain) for s in huge.suggestions)
    assert huge.weights == small.weights == {
        "uncertainty": 1.0, "coverage": 1.0, "diversity": 0.5, "novelty": 0.0,
    }  # fmt: skip
    write_suggestions(labeler, huge, tmp_path / "next")
    text = (tmp_path / "next" / "suggestions.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in suggestions.json"))


def test_scaled_weights_give_the_same_picks(labeler):  # noqa: F811
    a = suggest_annotations(labeler, 3, pool=12, weights=(2.0, 0.0, 1.0, 0.0))
    b = suggest_annotations(labeler, 3, pool=12, weights=(1.0, 0.0, 0.5, 0.0))
    assert [s.seed for s in a.suggestions] == [s.seed for s in b.suggestions]
    assert [s.gain for s in a.suggestions] == [s.gain for s in b.suggestions]


@pytest.mark.parametrize(
    ("weights", "words"),
    [(["0", "0", "0", "0"], "one of them > 0"), (["0", "0", "0", "2"], "needs --annotations")],
)
def test_cli_refuses_weights_that_rank_nothing(tmp_path, capsys, weights, words):
    argv = ["suggest", "--generator", "toyface-14", "--interpreter", "toyface-14", "--num",
            "1", "--pool", "2", "--out", str(tmp_path / "s"), "--weights", *weights]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--weights" in err and words in err, err
    assert not (tmp_path / "s").exists()
