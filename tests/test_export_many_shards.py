"""Merging many shards: the merge keeps a bounded number of files open (not one per shard,
which the usual limit of 1,024 open files refused past about a thousand shards), and its
result is byte for byte the same however its shard readers are blocked."""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import pytest
from test_export import _export, _one_thread, _snapshot, models  # noqa: F401 - fixtures

from dgan_data.export import merge_shards, records
from dgan_data.export import select as export_select

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc/self/fd"
)


def _staged(models: dict[str, str], out: Path, num: int, shards: int, batch: int) -> Path:  # noqa: F811
    """Every shard of an export generated, none merged yet."""
    for s in range(shards):
        _export(models, out, num=num, batch_size=batch, shard=s, num_shards=shards, merge=False)
    assert not (out / "index.jsonl").exists()
    return out


def _merged_copy(staged: Path, dest: Path) -> dict[str, str]:
    """Merge a copy of the staged export; the merged folder's files and their sha256."""
    shutil.copytree(staged, dest, symlinks=True)
    summary = merge_shards(dest)
    assert summary.complete
    return _snapshot(dest)


def test_many_shards_merge_under_a_low_open_files_limit(models, tmp_path):  # noqa: F811
    shards = 40
    staged = _staged(models, tmp_path / "staged", num=shards, shards=shards, batch=1)
    want = _merged_copy(staged, tmp_path / "normal")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = len(os.listdir("/proc/self/fd")) + 15  # one file per shard (40) cannot fit
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        got = _merged_copy(staged, tmp_path / "low")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert got == want
    assert "index.jsonl" in got and not any(k.startswith("index.shard-") for k in got)


@pytest.mark.parametrize("buffer_lines", [3, 6, 9, 24])  # 1, 2, 3 and 8 lines a block
def test_blocked_shard_readers_give_the_same_dataset(
    models,  # noqa: F811
    tmp_path,
    monkeypatch,
    buffer_lines,
):
    staged = _staged(models, tmp_path / "staged", num=24, shards=3, batch=4)  # 8 lines each
    want = _merged_copy(staged, tmp_path / "whole")  # each file read in one block
    monkeypatch.setattr(export_select, "_MERGE_BUFFER_LINES", buffer_lines)
    assert export_select._merge_block(3) == buffer_lines // 3
    assert _merged_copy(staged, tmp_path / "blocked") == want


@pytest.mark.parametrize("block", [1, 2, 3, 4, 100])
def test_block_reader_yields_the_lines_and_numbers_of_the_whole_reader(tmp_path, block):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"a":2}\n  \n\n{"a":3}\n{"a":4}\n\n{"a":5}')
    want = list(records._jsonl(path))
    assert [n for n, _ in want] == [1, 3, 6, 7, 9]
    assert list(records._jsonl_blocks(path, block)) == want


def test_block_reader_names_an_over_long_line(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "_LINE_BYTES", 8)
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"a":22222}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl: line 3 is longer than 8 bytes"):
        list(records._jsonl_blocks(path, 1))
