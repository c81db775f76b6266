"""Review of fileio: JSON is read only from regular files and never past its byte bound
(``read_json("/dev/zero")`` read until memory ran out, a FIFO blocked forever)."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs /dev/zero and /proc (Linux)"
)
def test_a_device_is_refused_before_reading() -> None:
    # in a child process with a time limit: the unbounded read this guards against fills
    # the memory of whatever process runs it
    code = (
        "import resource\n"
        "from dgan_data.fileio import read_json\n"
        "vm = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 2**29, vm + 2**29))\n"
        "try:\n    read_json('/dev/zero', max_bytes=1024)\n"
        "except ValueError as err:\n    print(err)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("read_json('/dev/zero') did not return within 60 s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "/dev/zero is not a regular file (a character device)" in done.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    err = _read_in_thread(fifo)
    if isinstance(err, TimeoutError):  # unblock the reader thread before failing
        with open(fifo, "wb"):
            pass
    assert isinstance(err, ValueError), err
    assert "manifest.json is not a regular file (a pipe)" in str(err)


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


def test_read_small_file_bounds_the_read(tmp_path: Path) -> None:
    from dgan_data.fileio import read_small_file

    path = tmp_path / "labelmap.txt"
    path.write_bytes(b"x" * 100)
    assert read_small_file(path, 100) == b"x" * 100
    with pytest.raises(ValueError, match=r"labelmap\.txt: 100 bytes, more than the 99 a map"):
        read_small_file(path, 99, "map")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_classes_json_and_labelmap_fifos_are_refused_without_blocking(tmp_path: Path) -> None:
    """Both were read whole with read_text: a FIFO blocked, /dev/zero filled the memory."""
    from dgan_data.annotations.shapes import MaskImportError
    from dgan_data.annotations.tool_readers import _parse_labelmap
    from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError

    fifo = tmp_path / "labelmap.txt"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def run(fn) -> None:
        try:
            fn()
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=run, args=(lambda: _parse_labelmap(fifo),), daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        with open(fifo, "wb"):
            pass
    assert outcome and isinstance(outcome[0], MaskImportError), outcome
    assert "not a regular file" in str(outcome[0])

    folder = tmp_path / "real"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    os.mkfifo(folder / "classes.json")
    outcome.clear()
    thread = threading.Thread(target=run, args=(lambda: LabeledFolder(folder),), daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        with open(folder / "classes.json", "wb"):
            pass
    assert outcome and isinstance(outcome[0], LabeledFolderError), outcome
    assert "classes.json" in str(outcome[0])
