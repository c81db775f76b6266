"""Epochs across DataLoader workers (review): ``set_epoch`` reaches persistent workers,
and a loaded state of a finished epoch gives way to the loop's next ``set_epoch``."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from dgan_data import DatasetGANStream


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def make(**kw) -> DatasetGANStream:
    options = {"generation_batch": 4, "drop_uncertain": 0.0, "output": "dict",
               "device": "cpu", "seed": 0, **kw}  # fmt: skip
    return DatasetGANStream("toyface-14", **options)


def first_batch_per_epoch(samples_per_epoch, **loader) -> list[list[int]]:
    """The first batch of epochs 0, 1, 2, each taken after set_epoch and then left (a
    step limit per epoch, as with Lightning's limit_train_batches)."""
    ds = make(samples_per_epoch=samples_per_epoch)
    dl = DataLoader(ds, batch_size=2, **loader)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning-style length warnings of workers
        for epoch in range(3):
            ds.set_epoch(epoch)
            out.append(sorted(next(iter(dl))["seed"].tolist()))
    return out


@pytest.mark.parametrize("samples_per_epoch", [24, None])
def test_set_epoch_reaches_persistent_workers(samples_per_epoch):
    # persistent workers kept the copy they started with: every epoch was epoch 0 again
    persistent = first_batch_per_epoch(samples_per_epoch, num_workers=2, persistent_workers=True)
    assert len({tuple(b) for b in persistent}) == 3
    fresh_workers = first_batch_per_epoch(samples_per_epoch, num_workers=2)
    assert persistent == fresh_workers


def test_a_copy_does_not_follow_the_original_s_set_epoch():
    ds = make(samples_per_epoch=8)
    twin = copy.deepcopy(ds)
    ds.set_epoch(3)
    assert (
        twin.epoch == 0
        and next(iter(twin))["seed"] == next(iter(make(samples_per_epoch=8)))["seed"]
    )
    twin.set_epoch(1)  # a copy signals on its own
    assert ds.epoch == 3 and twin.epoch == 1


def test_a_finished_epoch_restored_without_iterating_gives_way_to_the_next_epoch():
    pytest.importorskip("torchdata")
    from dgan_data.stream.workers import stateful_loader

    def loader():
        ds = make(samples_per_epoch=7)
        return ds, stateful_loader(ds, 0, batch_size=3)  # batches of 3, 3, 1

    ds, dl = loader()
    for _ in dl:
        state = dl.state_dict()  # the last: taken with the partial batch
    ds.set_epoch(1)
    uninterrupted = [b["seed"].tolist() for b in dl]

    ds, dl = loader()
    ds.set_epoch(0)
    dl.load_state_dict(state)
    assert list(dl) == []  # epoch 0 was done
    ds.set_epoch(1)  # raised "the loaded stream state is at epoch 0" at the next iter()
    assert [b["seed"].tolist() for b in dl] == uninterrupted


def test_an_unfinished_loaded_state_is_still_refused_in_another_epoch():
    ds = make(samples_per_epoch=8)
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    resumed = make(samples_per_epoch=8)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    with pytest.raises(ValueError, match="loaded stream state is at epoch 0"):
        next(iter(resumed))
