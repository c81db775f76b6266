"""Epochs of DataLoader workers without ``set_epoch`` when the loader's seed repeats.

A loop without ``set_epoch`` over a stream with ``samples_per_epoch`` moves on an epoch
per pass whatever the workers (README, *Resume*). Workers told an epoch ended by the
workers of an earlier pass from one ended by a sibling by the loader's base seed, so a
loader seeded alike every pass (a new ``DataLoader(generator=torch.Generator()
.manual_seed(s))`` per epoch, or ``torch.manual_seed(s)`` before each pass) handed out
the first epoch's samples again and again, silently.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from test_stream import random_interpreter, stream, tiny_generator
from torch.utils.data import DataLoader


@pytest.fixture(scope="module")
def tiny():
    """(G, interpreter): the tiny random models of the stream tests."""
    G = tiny_generator()
    return G, random_interpreter(G)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _make(tiny):
    return stream(tiny, output="dict", batch_size=2, samples_per_epoch=4, drop_uncertain=0.0)


def _seeds(loader: DataLoader) -> list[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # length warnings of an IterableDataset in workers
        return sorted(s for b in loader for s in b["seed"].tolist())


def _epochs_by_set_epoch(tiny, passes: int) -> list[list[int]]:
    """Each epoch's samples, chosen explicitly with set_epoch (the reference)."""
    ds = _make(tiny)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    out = []
    for epoch in range(passes):
        ds.set_epoch(epoch)
        out.append(_seeds(loader))
    return out


@pytest.mark.parametrize("reseed", ["generator", "manual_seed"])
def test_passes_move_on_when_the_loader_seed_repeats(tiny, reseed):
    ds = _make(tiny)
    passes = []
    for _ in range(3):
        if reseed == "generator":  # a new loader per epoch, seeded for reproducibility
            loader = DataLoader(
                ds, batch_size=None, num_workers=2, generator=torch.Generator().manual_seed(0)
            )
        else:
            torch.manual_seed(0)
            loader = DataLoader(ds, batch_size=None, num_workers=2)
        passes.append(_seeds(loader))
    assert len({tuple(p) for p in passes}) == 3, "a pass repeated an earlier epoch"
    assert passes == _epochs_by_set_epoch(tiny, 3)


def test_siblings_of_one_pass_still_share_its_epoch(tiny):
    """Worker 1's share is empty, so it ends its epoch at once: its sibling must not take
    that end for an earlier pass's and skip ahead (nor must the next pass)."""
    ds = stream(tiny, output="dict", batch_size=2, samples_per_epoch=2, drop_uncertain=0.0)
    passes = []
    for _ in range(2):
        torch.manual_seed(0)
        passes.append(_seeds(DataLoader(ds, batch_size=None, num_workers=2)))
    ref = stream(tiny, output="dict", batch_size=2, samples_per_epoch=2, drop_uncertain=0.0)
    expected = []
    for epoch in range(2):
        ref.set_epoch(epoch)
        expected.append(_seeds(DataLoader(ref, batch_size=None, num_workers=2)))
    assert passes == expected and passes[0] != passes[1]
