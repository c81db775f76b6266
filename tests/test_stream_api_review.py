"""The stream's and the annotation set's small API promises: statistics() has the same
keys before any iterator (the main process's copy with DataLoader workers), a negative
drop_uncertain names the range it must be in, and take() indexes with ints only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dgan_data import DatasetGANStream
from dgan_data.annotations import Annotations

TOY_CLASSES = 14


def test_statistics_before_any_iterator_has_every_key_at_zero():
    stream = DatasetGANStream("toyface-14", class_balance="image", samples_per_epoch=4)
    stats = stream.statistics()
    assert {k: stats[k] for k in ("candidates", "units", "items")} == {
        "candidates": 0,
        "units": 0,
        "items": 0,
    }
    assert math.isnan(stats["kept_by_uncertainty"])
    balance = stats["class_balance"]
    assert balance["seen"] == 0 and balance["yielded"] == 0
    assert len(balance["targets"]) == TOY_CLASSES and "teeth" in balance["targets"]


def test_the_main_process_copy_has_the_keys_of_a_worker_copy():
    stream = DatasetGANStream("toyface-14", class_balance="image", samples_per_epoch=4, seed=3)
    inline = DatasetGANStream("toyface-14", class_balance="image", samples_per_epoch=4, seed=3)
    for _ in DataLoader(stream, batch_size=2, num_workers=1):
        pass
    for _ in DataLoader(inline, batch_size=2, num_workers=0):
        pass
    main, counted = stream.statistics(), inline.statistics()
    assert set(main) == set(counted)
    assert set(main["class_balance"]) == set(counted["class_balance"])
    assert main["items"] == 0 and counted["items"] == 4


def test_a_stream_without_class_balance_reports_no_balance_block():
    stats = DatasetGANStream("toyface-14", samples_per_epoch=4).statistics()
    assert "class_balance" not in stats and stats["units"] == 0


@pytest.mark.parametrize("value", [-0.1, 1.0, 2.5])
def test_drop_uncertain_out_of_range_names_the_half_open_range(value):
    with pytest.raises(ValueError, match=r"drop_uncertain must be in \[0, 1\)"):
        DatasetGANStream("toyface-14", drop_uncertain=value)


@pytest.fixture
def four_samples():
    return Annotations.from_arrays(
        masks=np.zeros((4, 4, 4), np.uint8), class_names=["a", "b"], seeds=[10, 11, 12, 13]
    )


@pytest.mark.parametrize("index", [[1.7, 2.2], [True], ["3"]])
def test_take_refuses_what_is_not_an_int(four_samples, index):
    with pytest.raises(ValueError, match="take\\(\\) index must be an int"):
        four_samples.take(index)


def test_take_refuses_a_bare_int(four_samples):
    with pytest.raises(TypeError, match="sequence of sample indices"):
        four_samples.take(2)


@pytest.mark.parametrize("index", [[3, 1], (3, 1), np.array([3, 1]), torch.tensor([3, 1])])
def test_take_accepts_ints_of_any_kind(four_samples, index):
    assert four_samples.take(index).seeds == [13, 11]
