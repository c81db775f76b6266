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
from dgan_data.stream.workers import stateful_loader

SAMPLES_PER_EPOCH = 7  # batches of 3, 3 and 1 per epoch
LOADER_BATCH = 3


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    G = tiny_generator()
    return G, random_interpreter(G)


def _stream(tiny, **kw) -> DatasetGANStream:
    G, interp = tiny
    kw.setdefault("samples_per_epoch", SAMPLES_PER_EPOCH)
    return DatasetGANStream(
        generator=G, interpreter=interp, output="dict", generation_batch=4, device="cpu", **kw
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


def _train(tiny, steps: int, checkpoint_dir=None, resume=False, workers=0) -> list:
    ds = _stream(tiny)
    if workers:  # torchdata's loader holds every worker's stream state
        loader = stateful_loader(ds, workers, batch_size=LOADER_BATCH, persistent_workers=True)
    else:
        loader = DataLoader(ds, batch_size=LOADER_BATCH)
    torch.manual_seed(0)
    model = _Recorder()
    train_segmentation(
        model,
        loader,
        steps,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=3,
        resume=resume,
        resumable_source=loader if workers else ds,
        progress=False,
    )
    return model.seen


@pytest.mark.parametrize("workers", [0, 2])
def test_training_resumed_at_an_epoch_end_draws_the_uninterrupted_batches(tiny, tmp_path, workers):
    """With 2 workers (shares of 4 and 3 samples: batches 3 + 1 and 3) the workers'
    epochs diverged after such a resume, mixing the next epoch's batches in."""
    if workers:
        pytest.importorskip("torchdata")
    logging.disable(logging.WARNING)
    try:
        reference = _train(tiny, 9, workers=workers)
        first = _train(tiny, 3, tmp_path, workers=workers)  # exactly epoch 0
        rest = _train(tiny, 9, tmp_path, resume=True, workers=workers)
    finally:
        logging.disable(logging.NOTSET)
    assert sorted(len(b) for b in reference[:3]) == [1, 3, 3]
    assert first == reference[:3]
    assert rest == reference[3:]


def _seeds_over_epochs(ds, loader, n: int, stop: int | None = None, state=None):
    """The first ``n`` batches' seeds of a loop that moves to the next epoch whenever
    the loader ends (as train_segmentation does); with ``stop``, the state after it."""
    epoch, resumed, out = 0, False, []
    if state is not None:
        loader.load_state_dict(state["loader"])
        epoch, resumed = state["epoch"], True
    it, since = iter(loader), 0
    while len(out) < n:
        try:
            batch = next(it)
        except StopIteration:
            assert since or resumed, "an epoch without batches"
            epoch, resumed, since = epoch + 1, False, 0
            ds.set_epoch(epoch)
            it = iter(loader)
            continue
        since += 1
        out.append(batch["seed"].tolist())
        if stop is not None and len(out) == stop:
            return out, {"loader": loader.state_dict(), "epoch": epoch}
    return out, None


def test_persistent_workers_resume_right_after_an_epoch_change(tiny):
    """Whole batches, 2 persistent workers, stopped after the first batch of epoch 1:
    worker 1 has not handed out anything of epoch 1 yet, and its saved state must be
    epoch 1's start, not epoch 0's end (else it sat epoch 1 out after the resume)."""
    pytest.importorskip("torchdata")

    def make():
        ds = _stream(tiny, batch_size=2, samples_per_epoch=8)  # 4 batches, 2 per worker
        return ds, stateful_loader(ds, 2, batch_size=None, persistent_workers=True)

    ds, loader = make()
    reference, _ = _seeds_over_epochs(ds, loader, 8)
    ds, loader = make()
    first, state = _seeds_over_epochs(ds, loader, 8, stop=5)
    ds, loader = make()
    rest, _ = _seeds_over_epochs(ds, loader, 3, state=state)
    assert first == reference[:5]
    assert rest == reference[5:]
