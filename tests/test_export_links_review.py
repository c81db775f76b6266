"""Two folders of an export that are one folder, and a ``dataset.json`` without its own
sha256.

``images/`` as a symlink to ``masks/`` (inside the export, so no link led out): verify
called every image damaged and repairable, the rerun wrote the regenerated images
through the link over the masks and said "repaired", and the next verify found the
masks damaged, forever. Now verify and the rerun name the link in one line, and a
repair is checked before it is reported.

A hand edit of ``dataset.json`` with ``selection.description_sha256`` deleted passed
verify with no word; now verify notes that such edits cannot be detected, and a
threshold that the candidates' scores do not give is reported as an edit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_export import _export, _snapshot, models, reference  # noqa: F401
from test_export_hardening import _one_thread, done  # noqa: F401
from test_export_review_fixes import run_cli

from dgan_data.export import ExportDamagedError, records, verify_export

LINKS = [("images", "masks"), ("masks", "images"), ("images", ".")]


def _link(root: Path, name: str, target: str) -> Path:
    """Replace ``root/name`` (a folder) by a relative symlink to ``target``."""
    link = root / name
    for p in link.iterdir():
        p.unlink()
    link.rmdir()
    os.symlink(target, link)
    return link


@pytest.mark.parametrize(("name", "target"), LINKS)
def test_a_folder_linked_to_another_is_named_and_left_alone(models, reference, done, name, target):  # noqa: F811
    link = _link(done, name, target)
    kept = _snapshot(done)
    report = verify_export(done)
    assert len(report.problems) == 1, report.problems
    assert str(link) in report.problems[0] and "leads to" in report.problems[0]
    assert not report.repairable  # the link must be moved away first
    with pytest.raises(ExportDamagedError, match="move it away") as err:
        _export(models, done)
    assert str(link) in str(err.value)
    assert _snapshot(done) == kept  # nothing written through the link
    link.unlink()
    _export(models, done)
    assert verify_export(done).problems == []
    assert _snapshot(done) == _snapshot(reference)


def test_verify_names_the_link_in_one_line(done):  # noqa: F811
    link = _link(done, "images", "masks")
    out = run_cli("export", "--verify", "--out", str(done))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stdout.splitlines() if str(link) in line]
    assert len(lines) == 1 and "leads to the same folder as" in lines[0], out.stdout


def test_a_repair_that_does_not_hold_is_not_reported(models, done, monkeypatch):  # noqa: F811
    """Should anything else make a repair land elsewhere, the rerun says so, not
    "repaired": each repaired sample's files are checked again after the writes."""
    monkeypatch.setattr(records, "_shared_folder_problem", lambda *_: None, raising=False)
    _link(done, "images", "masks")
    with pytest.raises(ExportDamagedError, match="after the repair"):
        _export(models, done)


def _edit(root: Path, **selection: object) -> None:
    """Delete ``selection.description_sha256`` from dataset.json, set other fields."""
    path = root / "dataset.json"
    desc = json.loads(path.read_text())
    del desc["selection"]["description_sha256"]
    desc["selection"].update(selection)
    path.write_text(json.dumps(desc, indent=2))


def test_a_deleted_description_sha256_is_noted(done):  # noqa: F811
    _edit(done)
    report = verify_export(done)
    assert report.ok, report.problems
    assert any("no sha256 of its own content" in n for n in report.notes), report.notes


def test_an_edited_threshold_without_the_checksum_is_an_edit(models, done):  # noqa: F811
    _edit(done, threshold=0.0)
    report = verify_export(done)
    assert len(report.problems) == 1, report.problems
    assert "selection.threshold" in report.problems[0] and not report.repairable
    kept = _snapshot(done)
    with pytest.raises(ExportDamagedError, match=r"edited dataset\.json"):
        _export(models, done)
    assert _snapshot(done) == kept
