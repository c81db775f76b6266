"""Every shard of a finished export rerun at once (as torchrun reruns the command).

Before, each process took the folder's shared lock, then waited 2 s for the exclusive
one that verifying needs; the others held the shared lock, so they were refused with
``ExportBusyError`` (and torchrun then stopped the one that was repairing). Now a rerun
of a finished export waits for the folder, and a process that waited while another
verified returns that result instead of verifying again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_export import _cli_export_cmd, _env, _export, _jsonl, _one_thread, models  # noqa: F401

from dgan_data.export import verify as export_verify

_PAUSED_IN_VERIFY = """
import sys, time
from pathlib import Path
from dgan_data.export import verify as _verify
_scan = _verify._scan_complete
def _paused(root, desc):
    Path(sys.argv[1]).touch()  # holds the folder exclusively now
    while not Path(sys.argv[2]).exists():
        time.sleep(0.02)
    return _scan(root, desc)
_verify._scan_complete = _paused
from dgan_data.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture
def two_shards(models, tmp_path) -> Path:  # noqa: F811
    """A finished export made by two shards, one kept image damaged."""
    out = tmp_path / "data"
    _export(models, out, shard=0, num_shards=2)
    assert _export(models, out, shard=1, num_shards=2).complete
    return out


def _damage_a_kept_image(out: Path) -> tuple[Path, bytes]:
    image = out / _jsonl(out / "index.jsonl")[0]["image"]
    good = image.read_bytes()
    data = bytearray(good)
    data[60] ^= 0xFF
    image.write_bytes(bytes(data))
    return image, good


def _start_paused_rerun(models, out: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:  # noqa: F811
    """Shard 0's rerun in another process, stopped inside its verification."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    argv = _cli_export_cmd(models, out, 0.0)[4:]
    argv[argv.index("--num-shards") + 1] = "2"
    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_IN_VERIFY, str(ready), str(go), *argv],
        env=_env(),
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "shard 0 did not start"
        time.sleep(0.02)
    return proc, go


class _Rerun(threading.Thread):
    """Shard 1's rerun in this process, counting the verifications it makes."""

    def __init__(self, models, out: Path, monkeypatch) -> None:  # noqa: F811
        super().__init__(daemon=True)
        self.models, self.out = models, out
        self.scans, self.summary, self.error = 0, None, None
        scan = export_verify._scan_complete

        def counted(root, desc):
            self.scans += 1
            return scan(root, desc)

        monkeypatch.setattr(export_verify, "_scan_complete", counted)

    def run(self) -> None:
        try:
            self.summary = _export(self.models, self.out, shard=1, num_shards=2)
        except BaseException as exc:  # reported by the test
            self.error = exc


def _race(models, out: Path, tmp_path: Path, monkeypatch, end_first) -> _Rerun:  # noqa: F811
    """Shard 0's rerun paused inside its verification; shard 1's rerun started beside
    it; after 3 s (longer than the 2 s after which it used to be refused) shard 1 must
    still be waiting; ``end_first(process, go_file)`` then lets shard 0 go or kills it."""
    first, go = _start_paused_rerun(models, out, tmp_path)
    try:
        second = _Rerun(models, out, monkeypatch)
        second.start()
        time.sleep(3.0)
        assert second.error is None, second.error
        assert second.is_alive()  # waiting for shard 0's verification
    finally:
        end_first(first, go)
    second.join(timeout=300)
    assert second.error is None, second.error
    return second


def _let_go(first: subprocess.Popen, go: Path) -> None:
    go.touch()
    assert first.wait(timeout=300) == 0


def _kill(first: subprocess.Popen, go: Path) -> None:
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)


def test_shards_rerun_together_verify_once(models, two_shards, tmp_path, monkeypatch):  # noqa: F811
    image, good = _damage_a_kept_image(two_shards)
    second = _race(models, two_shards, tmp_path, monkeypatch, _let_go)
    assert second.summary.complete and second.summary.repaired == 0
    assert second.scans == 0  # shard 0 verified and repaired; not done twice
    assert image.read_bytes() == good
    assert not (two_shards / ".export.lock").exists()


def test_a_rerun_that_dies_does_not_count_as_verified(models, two_shards, tmp_path, monkeypatch):  # noqa: F811
    image, good = _damage_a_kept_image(two_shards)
    second = _race(models, two_shards, tmp_path, monkeypatch, _kill)
    assert second.scans == 1 and second.summary.repaired == 1
    assert image.read_bytes() == good


def test_each_later_rerun_verifies_again(models, two_shards, monkeypatch):  # noqa: F811
    """The note of a verification lives only while someone waits: a rerun started
    after the last one finished checks every file itself."""
    scans = []
    scan = export_verify._scan_complete
    monkeypatch.setattr(export_verify, "_scan_complete", lambda *a: scans.append(1) or scan(*a))
    image, good = _damage_a_kept_image(two_shards)
    assert _export(models, two_shards, shard=0, num_shards=2).repaired == 1
    _damage_a_kept_image(two_shards)
    assert _export(models, two_shards, shard=1, num_shards=2).repaired == 1
    assert len(scans) == 2 and image.read_bytes() == good
    assert json.loads((two_shards / "dataset.json").read_text())["status"] == "complete"


def test_platforms_without_fcntl_export_and_rerun(models, tmp_path, monkeypatch, caplog):  # noqa: F811
    """Without fcntl (Windows) there are no locks, no notes and no O_NONBLOCK nor
    os.pread: an export and its rerun still work, with the warning that concurrent
    exports are not detected."""
    from dgan_data.export import lock as export_lock

    monkeypatch.setattr(export_lock, "fcntl", None)
    monkeypatch.setattr(export_lock, "_WARNED", set())
    for name in ("O_NONBLOCK", "pread", "pwrite"):
        monkeypatch.delattr(export_lock.os, name)
    out = tmp_path / "data"
    with caplog.at_level("WARNING", logger="dgan_data.export.lock"):
        assert _export(models, out).complete
    assert "concurrent exports are not detected" in caplog.text
    image, good = _damage_a_kept_image(out)
    assert _export(models, out).repaired == 1
    assert image.read_bytes() == good
