"""Review of fileio: JSON is read only from regular files and never past its byte bound
(``read_json("/dev/zero")`` read until memory ran out, a FIFO blocked forever)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dgan_data.fileio import read_json


def _read_in_thread(path: Path, **kw) -> BaseException | object:
    """read_json's outcome, or a TimeoutError marker when it has not returned in 10 s."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(read_json(path, **kw))
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    return outcome[0] if outcome else TimeoutError("read_json did not return")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_before_reading() -> None:
    err = _read_in_thread(Path("/dev/zero"), max_bytes=1024)
    assert isinstance(err, ValueError), err
    assert "/dev/zero: not a regular file" in str(err)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    err = _read_in_thread(fifo)
    if isinstance(err, TimeoutError):  # unblock the reader thread before failing
        with open(fifo, "wb"):
            pass
    assert isinstance(err, ValueError), err
    assert "manifest.json: not a regular file" in str(err)


def test_regular_files_folders_and_bounds_as_before(tmp_path: Path) -> None:
    good = tmp_path / "a.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good) == {"a": [1, 2]}
    with pytest.raises(ValueError, match=r"a\.json: 13 bytes, more than the 12"):
        read_json(good, max_bytes=12)
    with pytest.raises(IsADirectoryError):
        read_json(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"b\.json: no such file"):
        read_json(tmp_path / "b.json")
