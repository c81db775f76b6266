"""A stream over an interpreter without class names (the Labeler calls its classes
``class_0`` ...) with ``class_balance``: its statistics before any iterator, and in the
main process of a DataLoader with workers, lacked the class_balance block (KeyError),
and a dict target naming no class was refused only when the stream first ran."""

from __future__ import annotations

import pytest
import torch
from test_stream import random_interpreter, tiny_generator

from dgan_data.stream import DatasetGANStream


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G)
    assert not interp.class_names
    return G, interp


def test_statistics_before_any_iterator_hold_the_balance_block(models):
    G, interp = models
    stream = DatasetGANStream(
        generator=G, interpreter=interp, device="cpu", class_balance="image", batch_size=2,
        samples_per_epoch=4,
    )  # fmt: skip
    before = stream.statistics()
    assert "class_balance" in before
    iterator = iter(stream)
    next(iterator)
    live = stream.statistics()
    assert sorted(before) == sorted(live)
    assert sorted(before["class_balance"]) == sorted(live["class_balance"])


def test_dict_targets_use_the_labelers_names(models):
    G, interp = models
    DatasetGANStream(generator=G, interpreter=interp, device="cpu", class_balance={"class_1": 0.3})
    with pytest.raises(ValueError, match="nose"):
        DatasetGANStream(generator=G, interpreter=interp, device="cpu", class_balance={"nose": 0.3})
