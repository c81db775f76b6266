"""Stream review: epochs with non-persistent DataLoader workers and no ``set_epoch``, a
``drop_uncertain`` that drops every image of a small window, and ``statistics()``.

Without ``set_epoch``, ``num_workers=0`` and persistent workers drew a new epoch each
pass, but plain workers (new copies of the main process's stream each pass) drew epoch 0
forever, silently. A ``drop_uncertain`` within 1e-9 of 1 with a window of 10 or fewer
dropped every image and failed only after 100 empty labelling steps.
"""

from __future__ import annotations

import math
import warnings

import pytest
from test_stream_epochs_review import _one_thread  # noqa: F401
from test_stream_epochs_review import make as make_stream
from torch.utils.data import DataLoader

from dgan_data import DatasetGANStream


def make(**kw) -> DatasetGANStream:
    return make_stream(**{"samples_per_epoch": 4, **kw})


def seeds_per_pass(stream, passes=3, set_epoch=None, **loader) -> list[list[int]]:
    dl = DataLoader(stream, batch_size=2, **loader)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(passes):
            if set_epoch is not None:
                stream.set_epoch(set_epoch(epoch))
            out.append(sorted(s for batch in dl for s in batch["seed"].tolist()))
    return out


def test_plain_workers_move_on_without_set_epoch_as_no_workers_do():
    in_process = seeds_per_pass(make())
    assert len({tuple(p) for p in in_process}) == 3  # a new epoch each pass
    assert seeds_per_pass(make(), num_workers=1) == in_process
    assert seeds_per_pass(make(), num_workers=2) == in_process
    assert seeds_per_pass(make(), num_workers=2, persistent_workers=True) == in_process


def test_set_epoch_still_wins_over_an_epoch_ended_in_workers():
    same = seeds_per_pass(make(), set_epoch=lambda epoch: 0, num_workers=2)
    assert same[0] == same[1] == same[2]  # asked for epoch 0 each time
    explicit = seeds_per_pass(make(), set_epoch=lambda epoch: 5 + epoch, num_workers=1)
    assert explicit == seeds_per_pass(make(), set_epoch=lambda epoch: 5 + epoch)


def test_the_main_process_goes_on_after_workers_ended_an_epoch():
    stream = make()
    workers = seeds_per_pass(stream, passes=1, num_workers=1)
    after = seeds_per_pass(stream, passes=1)  # num_workers=0 now: epoch 1
    assert [workers[0], after[0]] == seeds_per_pass(make(), passes=2)


@pytest.mark.parametrize("window", [1, 5, 10])
def test_a_window_that_would_drop_every_image_is_refused(window):
    with pytest.raises(ValueError) as err:
        make(drop_uncertain=0.9999999999, quantile_window=window)
    message = str(err.value)
    assert f"quantile_window={window} is too small for drop_uncertain=0.9999999999" in message
    assert "drop all" in message and "quantile_window >= 11" in message
    make(drop_uncertain=0.9999999999, quantile_window=11)  # drops 10 of 11: allowed


def test_statistics_have_the_same_keys_before_and_after_iterating():
    stream = make(class_balance="image")
    before = stream.statistics()
    assert before["items"] == 0 and math.isnan(before["kept_by_uncertainty"])
    list(stream)
    after = stream.statistics()
    assert list(after) == list(before)
    assert after["items"] == 4 and after["candidates"] >= 4
    assert list(after["class_balance"]) == list(before["class_balance"])
