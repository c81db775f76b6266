"""At a path the user names, writers never replace a device node, pipe or socket.

The atomic write (temp file + rename) renamed over whatever sat at the path: a FIFO
became a regular file, and as root ``--json /dev/null`` would make ``/dev/null`` one. At
a path the user names (``named_by_user=True``), pipes and character devices are now
written to directly; block devices and sockets are refused. (The tests use a FIFO and a
Unix socket of their own; they never touch ``/dev``.) Readers name a manifest or export
description that is not a regular file.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from dgan_data.cli import main
from dgan_data.fileio import atomic_write_bytes, output_path_problem, special_file_kind, write_json

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and sockets")


def read_fifo_in_background(path: Path) -> tuple[threading.Thread, list[bytes]]:
    received: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as f:  # blocks until the writer opens the pipe
            received.append(f.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, received


def test_a_pipe_is_written_to_and_stays_a_pipe(tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    thread, received = read_fifo_in_background(fifo)
    write_json(fifo, {"kept": 3}, named_by_user=True)
    thread.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # not replaced by a regular file
    assert received and b'"kept": 3' in received[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temp file left


@pytest.fixture
def unix_socket():
    # a short path: Unix socket names are limited to about 100 bytes
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"dgan-sock-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    path = folder / "s.png"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    yield path
    sock.close()
    path.unlink(missing_ok=True)
    folder.rmdir()


def test_a_socket_is_refused_and_kept(unix_socket):
    assert special_file_kind(unix_socket) == "socket"
    with pytest.raises(ValueError, match=r"s\.png is a socket, not a file: refusing to write"):
        atomic_write_bytes(unix_socket, b"data", named_by_user=True)
    assert stat.S_ISSOCK(os.stat(unix_socket).st_mode)
    assert output_path_problem(unix_socket) == "is a socket, not a file"


def test_the_command_line_refuses_a_socket_before_any_work(unix_socket, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", "toyface-14", "--num", "1", "--out", str(unix_socket)])
    assert exit_info.value.code == 2
    assert "is a socket, not a file" in capsys.readouterr().err
    assert stat.S_ISSOCK(os.stat(unix_socket).st_mode)


def test_regular_files_folders_and_missing_paths_are_not_special(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    assert special_file_kind(tmp_path / "f") is None
    assert special_file_kind(tmp_path) is None
    assert special_file_kind(tmp_path / "missing") is None
    atomic_write_bytes(tmp_path / "f", b"new")  # the atomic path is unchanged
    assert (tmp_path / "f").read_bytes() == b"new"


def test_a_manifest_or_description_that_is_a_pipe_is_named_not_called_missing(tmp_path):
    from dgan_data import AnnotationError, Annotations, ExportedDataset, merge_shards, verify_export

    ann = tmp_path / "ann"
    ann.mkdir()
    os.mkfifo(ann / "manifest.json")
    with pytest.raises(AnnotationError, match=r"manifest\.json: is not a regular file \(a pipe\)"):
        Annotations.load(ann)
    export = tmp_path / "export"
    export.mkdir()
    os.mkfifo(export / "dataset.json")
    for read in (ExportedDataset, verify_export, merge_shards):
        with pytest.raises(
            FileNotFoundError, match=r"dataset\.json: is not a regular file \(a pipe\)"
        ):
            read(export)
    (tmp_path / "other" / "dataset.json").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"dataset\.json: is a folder, not a file"):
        verify_export(tmp_path / "other")
