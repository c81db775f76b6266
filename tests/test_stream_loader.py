"""resumable_stream_loader: the loader over a stream and what holds its position, shared by
the demo and examples/train_deeplab.py."""

from __future__ import annotations

import pytest
from lightning_utilities.core.imports import RequirementCache
from test_stream import random_interpreter, tiny_generator
from torch.utils.data import DataLoader

import dgan_data.stream.workers as workers_mod
from dgan_data.stream import DatasetGANStream
from dgan_data.stream.workers import resumable_stream_loader


@pytest.fixture(scope="module")
def tiny_stream() -> DatasetGANStream:
    G = tiny_generator()
    return DatasetGANStream(
        generator=G, interpreter=random_interpreter(G), batch_size=2, device="cpu"
    )


def test_without_workers_the_stream_holds_the_position(tiny_stream):
    loader, position = resumable_stream_loader(tiny_stream, 0)
    assert position is tiny_stream
    assert type(loader) is DataLoader and loader.num_workers == 0
    assert loader.batch_size is None  # the stream makes whole batches


def test_with_workers_and_torchdata_the_loader_holds_every_workers_position(tiny_stream):
    pytest.importorskip("torchdata")
    loader, position = resumable_stream_loader(tiny_stream, 2, persistent_workers=True)
    assert position is loader
    assert callable(loader.state_dict) and callable(loader.load_state_dict)
    assert loader.num_workers == 2 and loader.persistent_workers


def test_with_workers_but_no_torchdata_nothing_holds_the_position(tiny_stream, monkeypatch):
    monkeypatch.setattr(workers_mod, "TORCHDATA", RequirementCache("torchdata>=999"))
    loader, position = resumable_stream_loader(tiny_stream, 2)
    assert position is None
    assert type(loader) is DataLoader and loader.num_workers == 2
