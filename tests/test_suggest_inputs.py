"""suggest's API names what it was given: a report that is not one, and the pool bound
in the API's own words (not the command line's)."""

from __future__ import annotations

import pytest

from dgan_data import suggest_annotations, write_suggestions


@pytest.mark.parametrize("report", ["suggestions.json", {"suggestions": []}, None])
def test_write_suggestions_names_a_report_that_is_not_one(tmp_path, report):
    # an AttributeError ('str' object has no attribute 'labeler_settings') before
    with pytest.raises(
        TypeError, match="report must be the SuggestionReport suggest_annotations returned"
    ):
        write_suggestions(None, report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_pool_smaller_than_num_is_named_in_the_apis_words():
    with pytest.raises(
        ValueError, match=r"the pool \(4\) must hold at least as many candidates as num \(5\)"
    ) as err:
        suggest_annotations(None, 5, pool=4)
    assert "--num" not in str(err.value)


@pytest.mark.parametrize("batch_size", [10**9, 65_537, 0])
def test_batch_size_is_bounded_like_every_other_batch(batch_size):
    # 10**9 was accepted: with coverage_by="labels" the whole pool went into one batch
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 65536\]"):
        suggest_annotations(None, 2, pool=4, batch_size=batch_size)
