"""Stream positions that a review found wrong:

- ``set_epoch`` (or a new ``iter()``) after an iterator stopped before its epoch's end
  left ``state_dict`` at the old position, so a run resumed from it went on one epoch
  behind (a step loop that takes exactly ``len(stream)`` items never sees the end);
- an interrupt while labelling (or augmenting) saved a position past candidates that
  were never handed out, so the resumed run skipped them.
"""

from __future__ import annotations

import copy
import itertools

import pytest

from dgan_data import DatasetGANStream

KW = dict(seed=1, output="dict", device="cpu", generation_batch=4)


def _seeds(items):
    return [int(item["seed"]) for item in items]


@pytest.mark.parametrize("taken", [4, 3])  # exactly len(stream) items, or fewer
def test_state_after_set_epoch_starts_that_epoch(taken):
    kw = dict(KW, samples_per_epoch=4)
    run = DatasetGANStream("toyface-14", **kw)
    _seeds(itertools.islice(run, taken))
    run.set_epoch(1)
    state = copy.deepcopy(run.state_dict())
    assert state["epoch"] == 1 and state["fresh"]
    resumed = DatasetGANStream("toyface-14", **kw)
    resumed.load_state_dict(state)
    assert _seeds(resumed) == _seeds(run)  # all of epoch 1, in both
    assert run.statistics()["items"] == 4  # the last iterator's figures stay readable


def test_state_after_a_new_iter_is_that_iterators_start():
    kw = dict(KW, samples_per_epoch=4)
    run = DatasetGANStream("toyface-14", **kw)
    _seeds(itertools.islice(run, 3))
    fresh_iterator = iter(run)
    state = copy.deepcopy(run.state_dict())
    assert state["epoch"] == 0 and state["fresh"]
    resumed = DatasetGANStream("toyface-14", **kw)
    resumed.load_state_dict(state)
    assert _seeds(resumed) == _seeds(fresh_iterator)


def _interrupt_once(obj, name):
    original = getattr(obj, name)

    def interrupted(*args, **kwargs):
        setattr(obj, name, original)
        raise KeyboardInterrupt

    setattr(obj, name, interrupted)


@pytest.mark.parametrize("where", ["labelling", "augmenting"])
def test_an_interrupt_mid_unit_resumes_without_a_gap(where):
    kw = dict(KW, samples_per_epoch=12, quantile_window=10, augment="default")
    reference = _seeds(DatasetGANStream("toyface-14", **kw))
    run = DatasetGANStream("toyface-14", **kw)
    it = iter(run)
    got = [next(it) for _ in range(4)]
    if where == "labelling":
        _interrupt_once(run.labeler(), "label")
    else:  # the stream's augmentation, called once per unit
        run._augment = _Raising(run._augment)
    with pytest.raises(KeyboardInterrupt):
        next(it)
    state = copy.deepcopy(run.state_dict())
    resumed = DatasetGANStream("toyface-14", **kw)
    resumed.load_state_dict(state)
    assert _seeds(got) + _seeds(resumed) == reference


class _Raising:
    """An augmentation that is interrupted on its first call, then works."""

    def __init__(self, augment):
        self.augment, self.calls = augment, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise KeyboardInterrupt
        return self.augment(*args, **kwargs)

    def __repr__(self):
        return repr(self.augment)
