"""Entries of a finished export of the wrong kind: a folder where ``index.jsonl``,
``candidates.jsonl`` or ``.export.lock`` belongs, a file where ``images/`` or ``masks/``
belongs. Verify reported the first ones as a missing file that a rerun repairs (and the
folders as one unreadable file per sample), and the rerun then failed with a raw
IsADirectoryError or FileExistsError. Now both name the entry in one line, leave it
alone, and a rerun after moving it away restores the export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_export import _export, _snapshot, models, reference  # noqa: F401
from test_export_hardening import _one_thread, done  # noqa: F401
from test_export_review_fixes import run_cli

from dgan_data.export import ExportDamagedError, verify_export


def _folder_for(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()
    (path / "notes.txt").write_text("the user's")


def _file_for(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text("the user's")


CASES = [
    ("index.jsonl", _folder_for, "is a folder where the export keeps a file"),
    ("candidates.jsonl", _folder_for, "is a folder where the export keeps a file"),
    ("masks", _file_for, "is a file where the export keeps a folder"),
    ("images", _file_for, "is a file where the export keeps a folder"),
]


@pytest.mark.parametrize(("name", "make", "says"), CASES)
def test_wrong_kind_is_one_line_and_left_alone(models, reference, done, name, make, says):  # noqa: F811
    entry = done / name
    make(entry)
    kept = _snapshot(done)
    report = verify_export(done)
    assert len(report.problems) == 1, report.problems
    assert str(entry) in report.problems[0] and says in report.problems[0]
    assert not report.repairable  # a rerun alone cannot: the entry must be moved first
    with pytest.raises(ExportDamagedError, match=says) as err:
        _export(models, done)
    assert str(entry) in str(err.value)
    assert _snapshot(done) == kept  # nothing of the user's deleted, nothing written
    (entry.rename(done.parent / "moved-away"))
    _export(models, done)
    assert verify_export(done).problems == []
    assert _snapshot(done) == _snapshot(reference)


def test_a_folder_for_the_lock_file(models, reference, done):  # noqa: F811
    lock = done / ".export.lock"
    _folder_for(lock)
    # verify: one problem to move away, exit 1, as for a linked lock (it raised
    # IsADirectoryError, exit 2); a rerun: one line, exit 2, nothing changed
    report = verify_export(done)
    assert len(report.problems) == 1 and ".export.lock is a folder" in report.problems[0]
    assert not report.repairable and report.move_away
    out = run_cli("export", "--verify", "--out", str(done))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert ".export.lock is a folder" in out.stdout and "move" in out.stdout
    with pytest.raises(ExportDamagedError, match=r"\.export\.lock is a folder"):
        _export(models, done)
    assert (lock / "notes.txt").read_text() == "the user's"
    shutil.rmtree(lock)
    assert _export(models, done).complete
    assert _snapshot(done) == _snapshot(reference)
