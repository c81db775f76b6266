"""An export whose files or folders are symlinks to nothing (a moved or unmounted
target). Verify reported ``index.jsonl`` as "no such file" and ``images/`` as one missing
file per sample, both repairable; the rerun then silently replaced the link with a new
file (or refused ``images/`` although verify had called it repairable), and a link for
``dataset.json`` was "not empty and has no dataset.json (found [..., 'dataset.json'])".
Now the link is named as one, left alone, and the rerun after it is moved restores the
export. A sample file that is such a link is named too, and still repaired by a rerun.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_export import _export, _snapshot, models, reference  # noqa: F401
from test_export_hardening import _one_thread, done  # noqa: F401

from dgan_data.export import ExportDamagedError, ExportedDataset, verify_export


def _link_to_nothing(entry: Path) -> Path:
    """Replace ``entry`` with a symlink to a path that does not exist; return that path."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    elif os.path.lexists(entry):
        entry.unlink()
    target = entry.parent / "unmounted" / entry.name
    entry.symlink_to(target)
    return target


LAYOUT = [
    ("index.jsonl", "file"),
    ("candidates.jsonl", "file"),
    (".export.lock", "file"),
    ("images", "folder"),
    ("masks", "folder"),
]


@pytest.mark.parametrize(("name", "kind"), LAYOUT)
def test_a_layout_entry_linking_nowhere_is_named_and_kept(models, reference, done, name, kind):  # noqa: F811
    entry = done / name
    target = _link_to_nothing(entry)
    says = f"{entry} is a broken symlink (to {target}) where the export keeps a {kind}"
    report = verify_export(done)
    assert report.problems == [report.problems[0]] and says in report.problems[0]
    assert not report.repairable  # a rerun would replace the user's link
    with pytest.raises(ExportDamagedError) as err:
        _export(models, done)
    assert says in str(err.value)
    if name != ".export.lock":
        with pytest.raises(ExportDamagedError, match="broken symlink"):
            ExportedDataset(done)
    assert entry.is_symlink() and not os.path.lexists(target)  # nothing written through it
    entry.unlink()
    _export(models, done)
    assert verify_export(done).problems == []
    assert _snapshot(done) == _snapshot(reference)


def test_a_description_linking_nowhere_is_not_called_absent(models, reference, done):  # noqa: F811
    entry = done / "dataset.json"
    target = _link_to_nothing(entry)
    with pytest.raises(ExportDamagedError) as err:
        _export(models, done)
    assert f"{entry} is a broken symlink (to {target})" in str(err.value)
    assert "has no dataset.json" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="broken symlink"):
        verify_export(done)
    assert entry.is_symlink() and not os.path.lexists(target)


def test_a_sample_linking_nowhere_is_named_and_repaired(models, reference, done):  # noqa: F811
    entry = done / "masks" / "000001.png"
    target = _link_to_nothing(entry)
    report = verify_export(done)
    assert report.problems == [f"{entry} is a broken symlink (to {target})"]
    assert report.repairable
    _export(models, done)
    assert not entry.is_symlink()
    assert verify_export(done).problems == []
    assert _snapshot(done) == _snapshot(reference)


def test_a_pipe_for_a_folder_is_not_called_a_file(models, done):  # noqa: F811
    entry = done / "images"
    shutil.rmtree(entry)
    os.mkfifo(entry)
    report = verify_export(done)
    assert report.problems == [
        f"{entry} is not a regular file (a pipe) where the export keeps a folder: "
        "move it away, then rerun"
    ]
    with pytest.raises(ExportDamagedError, match=r"images is not a regular file \(a pipe\)"):
        _export(models, done)
