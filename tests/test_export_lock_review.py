"""The lock file of an export, torchrun's world size, verify's advice and the export
command's range errors.

A rerun of a finished export wrote its lock note through a ``.export.lock`` that was a
symlink or a hard link to ``dataset.json``: the description was truncated, exit 0. Now
such a lock is refused before anything is written (one line, exit 2), and verify names
it. ``WORLD_SIZE=100000`` was refused as ``num_shards``; verify told to move a pipe at
``index.jsonl`` away and rerun, then summed up "a rerun cannot repair all of them"; and
``--num``, ``--batch-size`` and ``--shard`` out of range were named by their keywords.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from test_cli_errors import run
from test_export import BATCH, DROP, NUM, _export, _snapshot, models, reference  # noqa: F401
from test_export_hardening import _one_thread, done  # noqa: F401

from dgan_data.export import ExportDamagedError, verify_export
from dgan_data.export.lock import _ExportLock

LINKS = ["symlink", "hardlink"]
SAYS = {"symlink": "is a symlink (to dataset.json)", "hardlink": "is a hard link"}


def _link_lock(root: Path, how: str, target: str = "dataset.json") -> Path:
    """Plant ``root/.export.lock`` as a link to ``root/target``; return the lock path."""
    lock = root / ".export.lock"
    if how == "symlink":
        lock.symlink_to(target)
    else:
        os.link(root / target, lock)
    return lock


def _bytes_of(root: Path) -> dict[str, str]:
    """Every regular file under ``root`` that is not a symlink -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _cli_rerun(capsys, models: dict[str, str], out: Path) -> tuple[int, str, str]:  # noqa: F811
    return run(
        capsys, "export", "--generator", models["generator"], "--interpreter",
        models["interpreter"], "--num", str(NUM), "--out", str(out), "--batch-size", str(BATCH),
        "--drop-uncertain", str(DROP), "--device", "cpu", "--shard", "0", "--num-shards", "1",
        "--no-progress",
    )  # fmt: skip


# ------------------------------------------------------------- a linked lock file
@pytest.mark.parametrize("how", LINKS)
def test_a_linked_lock_is_refused_and_nothing_is_changed(models, reference, done, capsys, how):  # noqa: F811
    lock = _link_lock(done, how)
    kept = _bytes_of(done)
    with pytest.raises(ExportDamagedError) as err:
        _export(models, done)
    assert f"{lock} {SAYS[how]}" in str(err.value)
    code, _, stderr = _cli_rerun(capsys, models, done)
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1 and str(lock) in stderr
    assert _bytes_of(done) == kept  # dataset.json was truncated through the link
    assert lock.is_symlink() == (how == "symlink") and os.path.lexists(lock)
    report = verify_export(done)
    assert len(report.problems) == 1 and str(lock) in report.problems[0]
    assert not report.repairable and report.move_away
    assert _bytes_of(done) == kept
    lock.unlink()
    assert _export(models, done).complete
    assert _snapshot(done) == _snapshot(reference)


@pytest.mark.parametrize("how", LINKS)
def test_the_lock_never_opens_a_link_for_writing(tmp_path, how):
    """Past the layout check (a link planted meanwhile): refused on the open file."""
    (tmp_path / "dataset.json").write_bytes(b'{"precious": true}\n')
    lock_path = _link_lock(tmp_path, how)
    with _ExportLock(tmp_path) as lock:
        with pytest.raises(ExportDamagedError, match=r"\.export\.lock is a (sym|hard) ?link"):
            lock.acquire_folder(exclusive=True)
        lock.write_note(b"verified x")
    assert (tmp_path / "dataset.json").read_bytes() == b'{"precious": true}\n'
    assert os.path.lexists(lock_path)
    with _ExportLock(tmp_path, readonly=True) as lock:  # verify: it names the link itself
        assert lock.acquire_folder(exclusive=False)
    assert (tmp_path / "dataset.json").read_bytes() == b'{"precious": true}\n'


# ------------------------------------------------------------ torchrun's WORLD_SIZE
def test_a_world_size_out_of_range_names_the_variable(models, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("WORLD_SIZE", "100000")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=r"^environment WORLD_SIZE=100000: .*65536") as err:
        _export(models, tmp_path / "out", shard=None, num_shards=None)
    assert "num_shards must be" not in str(err.value)
    code, _, stderr = run(
        capsys, "export", "toyface-14", "--num", "4", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "WORLD_SIZE=100000" in stderr, stderr
    assert "num_shards must be" not in stderr
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------ verify's advice on a pipe
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("name", ["index.jsonl", "candidates.jsonl"])
def test_verify_advice_on_a_pipe_agrees_with_its_line(models, reference, done, capsys, name):  # noqa: F811
    (done / name).unlink()
    os.mkfifo(done / name)
    report = verify_export(done)
    assert report.move_away and not report.repairable
    code, out, _ = run(capsys, "export", "--verify", "--out", str(done))
    assert code == 1
    problem, summary = out.strip().splitlines()
    assert "move it away, then rerun" in problem and str(done / name) in problem
    assert "move the named entry away, then rerun the export command" in summary
    assert "cannot repair" not in summary and "new folder" not in summary
    (done / name).unlink()
    assert _export(models, done).complete  # the rerun does repair it
    assert _snapshot(done) == _snapshot(reference)


# --------------------------------------------- the export command's range errors
@pytest.mark.parametrize(
    ("args", "option", "keyword"),
    [
        (["--num", "10000001"], "--num", "num must be"),
        (["--num", "4", "--batch-size", "70000"], "--batch-size", "batch_size"),
        (["--num", "4", "--num-shards", "70000", "--shard", "0"], "--num-shards", "num_shards"),
        (
            ["--num", "4", "--shard", "2", "--num-shards", "2"],
            "--shard must be in [0, 1]",
            "shard must",
        ),
    ],
)
def test_export_range_errors_name_the_option(tmp_path, capsys, args, option, keyword):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "export", "toyface-14", *args, "--out", str(out))
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert option in stderr and not re.search(rf"(?<![-\w]){keyword}", stderr), stderr
    assert not out.exists()


# ------------------------------------------------------- a folder at the lock's place
# (verify, a rerun and the CLI: tests/test_export_wrong_kind.py)
def test_the_lock_refuses_a_folder_planted_after_the_layout_check(tmp_path):
    """A writable open names it as a link is named (it raised IsADirectoryError, which
    is not an ExportDamagedError); a read-only open leaves it to the layout check."""
    (tmp_path / ".export.lock").mkdir()
    lock = _ExportLock(tmp_path)
    with lock, pytest.raises(ExportDamagedError, match=r"\.export\.lock is a folder"):
        lock.acquire_folder(exclusive=True)
    with _ExportLock(tmp_path, readonly=True) as lock:  # verify: the layout check names it
        assert lock.acquire_folder(exclusive=False)
