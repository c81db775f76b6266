"""A per-sample stream whose epoch ends in a partial DataLoader batch resumes exactly.

Collating that partial batch runs the stream's iterator to its end before the batch is
handed out; the state taken for that batch used to be a fresh state of the next epoch,
so a run resumed there trained the next epoch twice.
"""

from __future__ import annotations

import logging

import pytest
import torch
from test_stream import random_interpreter, tiny_generator
from torch import nn
from torch.utils.data import DataLoader

from dgan_data.downstream.train import train_segmentation
from dgan_data.stream import DatasetGANStream

SAMPLES_PER_EPOCH = 7  # batches of 3, 3 and 1 per epoch
LOADER_BATCH = 3


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    G = tiny_generator()
    return G, random_interpreter(G)


def _stream(tiny) -> DatasetGANStream:
    G, interp = tiny
    return DatasetGANStream(
        generator=G,
        interpreter=interp,
        output="dict",
        samples_per_epoch=SAMPLES_PER_EPOCH,
        generation_batch=4,
        device="cpu",
    )


def test_state_after_the_partial_last_batch_is_the_finished_epoch(tiny):
    ds = _stream(tiny)
    batches = list(DataLoader(ds, batch_size=LOADER_BATCH))
    assert [len(b["seed"]) for b in batches] == [3, 3, 1]
    state = ds.state_dict()
    assert state["epoch"] == 0 and not state.get("fresh")
    resumed = _stream(tiny)
    resumed.load_state_dict(state)
    assert list(DataLoader(resumed, batch_size=LOADER_BATCH)) == []  # epoch 0 is done
    ds.set_epoch(1)  # an explicit move still gives the next epoch's fresh state
    assert ds.state_dict()["epoch"] == 1 and ds.state_dict().get("fresh")


class _Recorder(nn.Module):
    """A 1x1 conv segmenter that records the images of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)
        self.num_classes = 5
        self.config = {"arch": "recorder"}
        self.seen: list[tuple[float, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(tuple(round(float(v), 4) for v in x.sum((1, 2, 3))))
        return self.conv(x)


def _train(tiny, steps: int, checkpoint_dir=None, resume: bool = False) -> list:
    ds = _stream(tiny)
    torch.manual_seed(0)
    model = _Recorder()
    train_segmentation(
        model,
        DataLoader(ds, batch_size=LOADER_BATCH),
        steps,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=3,
        resume=resume,
        resumable_source=ds,
        progress=False,
    )
    return model.seen


def test_training_resumed_at_an_epoch_end_draws_the_uninterrupted_batches(tiny, tmp_path):
    logging.disable(logging.WARNING)
    try:
        reference = _train(tiny, 9)
        first = _train(tiny, 3, tmp_path)  # exactly epoch 0; last.pt at step 3
        rest = _train(tiny, 9, tmp_path, resume=True)
    finally:
        logging.disable(logging.NOTSET)
    assert [len(b) for b in reference] == [3, 3, 1] * 3
    assert first == reference[:3]
    assert rest == reference[3:]
