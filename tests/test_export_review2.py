"""Export fixes of a second review.

A folder in place of a sample file of a finished export: verify reported it as damage
that a rerun repairs (``repairable``, "rerun the export command to repair them"), but the
rerun refused the folder. Now verify says to move it away (``move_away``), as for the
other entries of the wrong kind, and a rerun after moving it restores the export.

``shard_candidates`` checked nothing: a negative shard gave negative indices, a shard
past ``num_shards`` gave ``[]``, ``batch_size=0`` raised ZeroDivisionError. Now it
raises the ValueError that ``export_dataset`` raises for the same arguments.
"""

from __future__ import annotations

import json

import pytest
from test_export import _export, _jsonl, _snapshot, models, reference  # noqa: F401
from test_export_hardening import _one_thread, done  # noqa: F401
from test_export_review import folder_in_place

from dgan_data.cli import main
from dgan_data.export import ExportDamagedError, export_dataset, shard_candidates, verify_export


# ------------------------------------------------- a folder in place of a sample file
@pytest.mark.parametrize("key", ["image", "mask"])
def test_a_folder_for_a_sample_file_is_to_be_moved_away(models, reference, done, capsys, key):  # noqa: F811
    rel = _jsonl(done / "index.jsonl")[3][key]
    report = folder_in_place(done, rel)
    assert not report.repairable and report.move_away
    assert main(["export", "--verify", "--out", str(done)]) == 1
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "move the named entry away, then rerun the export command" in summary
    assert "rerun the export command to repair them" not in summary
    with pytest.raises(ExportDamagedError, match=r"is a folder where a sample file belongs"):
        _export(models, done)
    assert (done / rel / "keep.txt").read_text() == "the user's"
    (done / rel).rename(done.parent / "moved-away")
    assert _export(models, done).repaired == 1
    assert verify_export(done).problems == []
    assert _snapshot(done) == _snapshot(reference)


def test_a_folder_for_a_sample_file_and_an_edit_cannot_be_repaired(done):  # noqa: F811
    """An edited dataset.json is never repairable: moving the folder would not help."""
    rel = _jsonl(done / "index.jsonl")[0]["mask"]
    (done / rel).unlink()
    (done / rel).mkdir()
    path = done / "dataset.json"
    info = json.loads(path.read_text())
    info["selection"]["threshold"] = 0.93
    path.write_text(json.dumps(info, indent=2))
    report = verify_export(done)
    assert not report.repairable and not report.move_away


def test_damaged_sample_files_stay_repairable(done):  # noqa: F811
    rel = _jsonl(done / "index.jsonl")[2]["mask"]
    (done / rel).write_bytes(b"not a png")
    report = verify_export(done)
    assert len(report.problems) == 1 and report.repairable and not report.move_away


# ------------------------------------------------------- shard_candidates' arguments
BAD = [
    ({"num": 10, "batch_size": 4, "shard": -1, "num_shards": 2}, "shard must be in [0, 1], got -1"),
    ({"num": 10, "batch_size": 4, "shard": 2, "num_shards": 2}, "shard must be in [0, 1], got 2"),
    ({"num": 10, "batch_size": 4, "shard": 3, "num_shards": 2}, "shard must be in [0, 1], got 3"),
    ({"num": 10, "batch_size": 0, "shard": 0, "num_shards": 1}, "batch_size must be in [1, "),
    ({"num": 10, "batch_size": 4, "shard": 0, "num_shards": 0}, "num_shards must be in [1, "),
    ({"num": 0, "batch_size": 4, "shard": 0, "num_shards": 1}, "num must be in [1, "),
    ({"num": 10, "batch_size": 4.0, "shard": 0, "num_shards": 1}, "batch_size must be an integer"),
    ({"num": 10, "batch_size": 4, "shard": True, "num_shards": 2}, "shard must be an integer"),
]


@pytest.mark.parametrize(("args", "says"), BAD, ids=[s for _, s in BAD])
def test_shard_candidates_refuses_what_export_dataset_refuses(tmp_path, args, says):
    with pytest.raises(ValueError) as err:
        shard_candidates(**args)
    assert str(err.value).startswith(says)
    num, batch_size, shard, num_shards = args.values()
    with pytest.raises(ValueError) as export_err:  # refused before any model is loaded
        export_dataset(
            None, num, tmp_path / "out", shard=shard, num_shards=num_shards,
            batch_size=batch_size, drop_uncertain=0.0, progress=False,
        )  # fmt: skip
    assert str(err.value) == str(export_err.value)
    assert not (tmp_path / "out").exists()


def test_shard_candidates_in_bounds_are_unchanged():
    assert shard_candidates(10, 4, 0, 2) == [0, 1, 2, 3, 8, 9]
    assert shard_candidates(10, 4, 1, 2) == [4, 5, 6, 7]
    assert shard_candidates(10, 4, 3, 4) == []  # more shards than batches: nothing to do
