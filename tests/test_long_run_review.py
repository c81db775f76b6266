"""Long-run memory (review): an export shard's journal kept every generated
candidate's entry in memory (about 1.2 KB each as a dict) and built its whole index as
one bytes object, so a shard of millions of candidates held gigabytes by its end. The
journal now keeps only the indices, and the index is streamed from the journal file."""

from __future__ import annotations

import pytest
import torch

from dgan_data.export import export_dataset
from dgan_data.export import generate as generate_mod

NUM, BATCH = 12, 4


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def _export(folder, **kw):
    args = {"batch_size": BATCH, "progress": False, "merge": False, "seed": 0}
    return export_dataset("toyface-14", NUM, folder, **{**args, **kw})


def _shard_index(folder) -> bytes:
    (path,) = folder.glob("index.shard-*.jsonl")
    return path.read_bytes()


def test_the_journal_holds_no_more_entries_after_more_batches(tmp_path, monkeypatch):
    held: list[int] = []
    append = generate_mod._Journal.append

    def spy(self, entries):
        append(self, entries)
        held.append(len(self.entries))  # the entry dicts kept in memory

    monkeypatch.setattr(generate_mod._Journal, "append", spy)
    _export(tmp_path / "data")
    assert len(held) == NUM // BATCH
    assert held == [held[0]] * len(held)  # was 4, 8, 12: one entry per candidate


def test_a_resume_that_regenerates_a_middle_candidate_writes_the_same_index(tmp_path):
    # the regenerated candidate is appended after the rewritten (sorted) lines: the
    # streamed index must still list the candidates in index order
    _export(tmp_path / "ref")
    folder = tmp_path / "data"
    _export(folder)
    first = _shard_index(folder)
    staged = sorted(folder.rglob("images/*.png"))
    assert len(staged) == NUM
    staged[5].unlink()
    summary = _export(folder)
    assert summary.generated == 1
    assert _shard_index(folder) == first == _shard_index(tmp_path / "ref")
