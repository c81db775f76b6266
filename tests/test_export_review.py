"""Export fixes of a review: a user's folder is never deleted, the repair advice is
true, a hand edit of dataset.json is caught, and messages say what is wrong."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
import torch
from test_export import _export, _jsonl, _snapshot
from test_export_hardening import (  # noqa: F401 - fixtures: one thread, the reference
    _one_thread,
    done,
    models,
    reference,
)

from dgan_data.cli import main
from dgan_data.export import NotAnExportError, export_dataset, verify_export
from dgan_data.export import lock as lock_mod
from dgan_data.export.records import ExportDamagedError


def test_a_users_candidates_folder_is_refused_and_kept(models, tmp_path):  # noqa: F811
    """An export deletes its staging folder ``candidates/`` when it finishes: a folder of
    that name in a folder without dataset.json is the user's, not a staging area."""
    out = tmp_path / "out"
    (out / "candidates").mkdir(parents=True)
    (out / "candidates" / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match=r"not empty and has no dataset.json.*candidates"):
        _export(models, out)
    assert (out / "candidates" / "notes.txt").read_text() == "precious"
    assert not (out / "dataset.json").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "5", "WORLD_SIZE": "2"}, "environment RANK=5: must be in [0, WORLD_SIZE=2)"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "environment WORLD_SIZE=0: must be >= 1"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "environment RANK='x' is not an integer"),
    ],
)
def test_a_bad_torchrun_environment_is_named(models, tmp_path, monkeypatch, env, message):  # noqa: F811
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError) as err:
        _export(models, tmp_path / "out", shard=None, num_shards=None)
    assert str(err.value) == f"{message} (or give shard and num_shards)"


def test_an_image_symlinked_out_is_repaired_by_the_rerun_verify_promises(
    models,  # noqa: F811
    done,  # noqa: F811
    reference,  # noqa: F811
    tmp_path,
):
    rel = _jsonl(done / "index.jsonl")[1]["image"]
    outside = tmp_path / "outside.png"
    shutil.copy(done / rel, outside)
    (done / rel).unlink()
    (done / rel).symlink_to(outside)
    report = verify_export(done)
    assert report.problems == [f"{done / rel} is a symlink leading outside the export"]
    assert report.repairable
    summary = _export(models, done)
    assert summary.repaired == 1 and not (done / rel).is_symlink()
    assert outside.read_bytes() == (done / rel).read_bytes()  # the outside file untouched
    assert _snapshot(done) == _snapshot(reference)


def folder_in_place(root, rel: str):
    """Replace the export's file ``rel`` by a folder holding a file of the user's, and
    verify: the one problem names it as a folder. Returns the report."""
    (root / rel).unlink()
    (root / rel).mkdir()
    (root / rel / "keep.txt").write_text("the user's")
    report = verify_export(root)
    assert report.problems == [
        f"{root / rel} is a folder, not a file (remove it, then rerun the export command)"
    ]
    return report


def test_a_folder_in_place_of_a_sample_is_named_and_never_deleted(models, done):  # noqa: F811
    rel = _jsonl(done / "index.jsonl")[0]["mask"]
    folder_in_place(done, rel)
    with pytest.raises(ExportDamagedError, match=r"is a folder where a sample file belongs"):
        _export(models, done)
    assert (done / rel / "keep.txt").read_text() == "the user's"
    assert not [p for p in (done / "masks").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "edit",
    [
        lambda info: info["classes"].__setitem__(1, info["classes"][1] + "x"),
        lambda info: info["palette"].__setitem__(0, [1, 2, 3]),
        lambda info: info["selection"].__setitem__("threshold", 0.93),
        lambda info: info["settings"].__setitem__("seed", 1),
    ],
    ids=["class name", "palette", "threshold", "seed"],
)
def test_a_hand_edited_dataset_json_is_caught(models, done, capsys, edit):  # noqa: F811
    path = done / "dataset.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info, indent=2))
    report = verify_export(done)
    assert len(report.problems) == 1 and not report.repairable
    assert report.problems[0].startswith(f"{path} was edited after the export finished")
    assert main(["export", "--verify", "--out", str(done)]) == 1
    assert "dataset.json was edited" in capsys.readouterr().out
    if info["settings"]["seed"] == 0:  # (a seed edit is refused as other settings first)
        with pytest.raises(ExportDamagedError, match=r"dataset\.json was edited"):
            _export(models, done)


def test_verify_of_a_foreign_dataset_json_is_a_usage_error(tmp_path, capsys):
    folder = tmp_path / "js"
    folder.mkdir()
    (folder / "dataset.json").write_text('{"name": "x"}')
    with pytest.raises(NotAnExportError, match=r"not a dgan_data export description"):
        verify_export(folder)
    assert main(["export", "--verify", "--out", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a dgan_data export description" in err[0]


def test_a_read_only_file_system_is_named_as_such(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "x")

    monkeypatch.setattr(lock_mod.os, "open", read_only)
    with (
        lock_mod._ExportLock(tmp_path) as lock,
        pytest.raises(PermissionError, match=r"export folder is not writable \(Read-only"),
    ):
        lock.acquire_folder(exclusive=False, wait=0)


def test_a_journal_damaged_inside_says_how_to_recover(models, reference, tmp_path):  # noqa: F811
    out = tmp_path / "data"
    _export(models, out, merge=False)
    journal = out / "candidates" / "shard-0-of-1" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text(lines[0] + "{damaged\n" + "".join(lines[2:]))
    with pytest.raises(
        ValueError, match=r"line 2: not valid JSON.*delete .*journal\.jsonl and rerun"
    ):
        _export(models, out)
    journal.unlink()  # as the message says
    assert _export(models, out).complete
    assert _snapshot(out) == _snapshot(reference)


def test_a_bad_local_rank_is_named(models, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ValueError, match=r"environment LOCAL_RANK='x' is not a GPU index"):
        export_dataset(None, 4, tmp_path / "out", progress=False, **models)


def test_the_merge_removes_its_own_temps_and_keeps_a_users(models, tmp_path):  # noqa: F811
    """Stale temps of the export's writers go when the selection finishes; a user's own
    hidden ``.tmp`` files in the export folder are not the export's to delete."""
    out = tmp_path / "data"
    _export(models, out, merge=False)  # generation done, selection not yet run
    ours = [
        out / ".index.jsonl.merge.tmp",
        out / ".dataset.json.shard-0-of-1.k3j_x9a2.tmp",
        out / "images" / ".000003.png.repair.ab12cd34.tmp",
    ]
    users = [out / ".notes.tmp", out / ".my.draft.tmp", out / "images" / ".cropped.png.tmp"]
    for path in ours + users:
        path.parent.mkdir(exist_ok=True)
        path.write_text("x")
    _export(models, out)
    assert [p for p in ours if p.exists()] == []
    assert [p.read_text() for p in users] == ["x"] * 3
    assert verify_export(out).problems == []
